from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments.models import Blob
from app.queues.models import Queue, queue_grants
from app.tickets.models import TicketPriority
from tests.conftest import Caller, MakeAgent


def ticket_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": "Fakturaen er forkert – beløb på 1.250 kr",
        "customer": {"email": "Søren.Ærø@Example.dk", "name": "Søren Ærø"},
        "message": {"body_text": "Hej, min faktura er forkert. Venlig hilsen Søren"},
    }
    body.update(overrides)
    return body


async def make_queue(session: AsyncSession, name: str, **fields: Any) -> int:
    queue = Queue(name=name, **fields)
    session.add(queue)
    await session.flush()
    return queue.id


async def create_ticket(
    client: httpx.AsyncClient, caller: Caller, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/tickets", headers=caller.headers, json=ticket_body(**overrides)
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_create_ticket_creates_customer_and_first_message(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    response = await client.post("/api/v1/tickets", headers=admin.headers, json=ticket_body())
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["number"] >= 100000
    assert ticket["status"] == "new"
    assert ticket["priority"] == "normal"
    assert ticket["channel"] == "api"
    assert ticket["subject"] == "Fakturaen er forkert – beløb på 1.250 kr"
    assert ticket["created_at"].endswith("Z")
    assert response.headers["location"] == f"/api/v1/tickets/{ticket['id']}"
    assert response.headers["etag"] == f'"{ticket["version"]}"'

    messages = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin.headers)
    assert messages.status_code == 200
    [first] = messages.json()["items"]
    assert first["direction"] == "inbound"
    assert first["public"] is True
    assert first["from_address"] == "søren.ærø@example.dk"
    assert first["author_customer_id"] == ticket["customer_id"]
    assert first["body_text"].startswith("Hej, min faktura")

    again = await create_ticket(client, admin, subject="Endnu et spørgsmål")
    assert again["customer_id"] == ticket["customer_id"]
    assert again["number"] > ticket["number"]


async def test_queue_default_priority_and_validation(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    queue_id = await make_queue(session, "Fakturering", default_priority=TicketPriority.high)
    ticket = await create_ticket(client, admin, queue_id=queue_id)
    assert ticket["priority"] == "high"
    assert ticket["queue_id"] == queue_id

    unknown = await client.post(
        "/api/v1/tickets", headers=admin.headers, json=ticket_body(queue_id=999999)
    )
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["errors"][0]["pointer"] == "/body/queue_id"

    missing = await client.post(
        "/api/v1/tickets", headers=admin.headers, json={"customer": {"email": "a@example.dk"}}
    )
    assert missing.status_code == 422
    pointers = {e["pointer"] for e in missing.json()["errors"]}
    assert {"/body/subject", "/body/message"} <= pointers

    bad_status = await client.post(
        "/api/v1/tickets", headers=admin.headers, json=ticket_body(status="lost")
    )
    assert bad_status.status_code == 422
    assert bad_status.json()["errors"][0]["pointer"] == "/body/status"


async def test_update_status_timestamps_and_if_match(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    assignee = await make_agent("agent")
    ticket = await create_ticket(client, admin)
    url = f"/api/v1/tickets/{ticket['id']}"
    etag = f'"{ticket["version"]}"'

    solved = await client.patch(
        url,
        headers={**admin.headers, "If-Match": etag},
        json={
            "status": "solved",
            "assignee_id": assignee.id,
            "tags": ["faktura", "vip", "vip"],
            "custom_fields": {"ordre": "A-17", "land": "DK"},
        },
    )
    assert solved.status_code == 200, solved.text
    body = solved.json()
    assert body["status"] == "solved"
    assert body["solved_at"] is not None
    assert body["assignee_id"] == assignee.id
    assert body["tags"] == ["faktura", "vip"]
    assert solved.headers["etag"] != etag

    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": etag}, json={"priority": "urgent"}
    )
    assert stale.status_code == 412
    assert stale.json()["current_version"] == body["version"]

    reopened = await client.patch(
        url,
        headers={**admin.headers, "If-Match": solved.headers["etag"]},
        json={"status": "open", "custom_fields": {"land": None}},
    )
    assert reopened.status_code == 200
    assert reopened.json()["solved_at"] is None
    assert reopened.json()["custom_fields"] == {"ordre": "A-17"}

    null_status = await client.patch(url, headers=admin.headers, json={"status": None})
    assert null_status.status_code == 422

    audit = await client.get(
        "/api/v1/audit-events",
        headers=admin.headers,
        params={"entity_type": "ticket", "entity_id": str(ticket["id"])},
    )
    actions = [e["action"] for e in audit.json()["items"]]
    assert actions.count("ticket.updated") == 2
    assert actions[-1] == "ticket.created"
    update = audit.json()["items"][1]
    assert update["before"]["status"] == "new"
    assert update["after"]["status"] == "solved"
    assert update["actor_label"] == admin.email
    assert update["request_id"]


async def test_replies_notes_and_customer_messages_move_the_ticket(
    client: httpx.AsyncClient, admin: Caller, sending_mailbox: int
) -> None:
    ticket = await create_ticket(client, admin)
    url = f"/api/v1/tickets/{ticket['id']}"

    note = await client.post(
        f"{url}/messages", headers=admin.headers, json={"body_text": "Tjek ordren", "public": False}
    )
    assert note.status_code == 201
    assert note.json()["public"] is False
    assert note.json()["to"] == []
    after_note = (await client.get(url, headers=admin.headers)).json()
    assert after_note["status"] == "new"
    assert after_note["first_response_at"] is None

    reply = await client.post(
        f"{url}/messages",
        headers=admin.headers,
        json={"body_text": "Hej Søren, vi kigger på det.", "cc": ["bogholderi@example.dk"]},
    )
    assert reply.status_code == 201
    assert reply.json()["to"] == ["søren.ærø@example.dk"]
    assert reply.json()["cc"] == ["bogholderi@example.dk"]
    assert reply.json()["author_agent_id"] == admin.id
    after_reply = (await client.get(url, headers=admin.headers)).json()
    assert after_reply["status"] == "open"
    assert after_reply["first_response_at"] is not None

    await client.patch(url, headers=admin.headers, json={"status": "solved"})
    answer = await client.post(
        f"{url}/messages",
        headers=admin.headers,
        json={"body_text": "Det er stadig forkert", "direction": "inbound"},
    )
    assert answer.status_code == 201
    assert answer.json()["from_address"] == "søren.ærø@example.dk"
    assert (await client.get(url, headers=admin.headers)).json()["status"] == "open"

    inbound_note = await client.post(
        f"{url}/messages",
        headers=admin.headers,
        json={"body_text": "x", "direction": "inbound", "public": False},
    )
    assert inbound_note.status_code == 422

    listed = await client.get(f"{url}/messages", headers=admin.headers, params={"limit": 2})
    page1 = listed.json()
    assert len(page1["items"]) == 2
    page2 = (
        await client.get(
            f"{url}/messages",
            headers=admin.headers,
            params={"limit": 2, "cursor": page1["next_cursor"]},
        )
    ).json()
    assert [m["id"] for m in page1["items"] + page2["items"]] == sorted(
        m["id"] for m in page1["items"] + page2["items"]
    )
    assert len(page2["items"]) == 2
    assert page2["next_cursor"] is None


async def test_attachments_are_stored_once_and_downloadable(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession, sending_mailbox: int
) -> None:
    content = "Kvittering for købet – æøå ÆØÅ".encode()
    upload = {
        "filename": "kvittering æøå.txt",
        "content_type": "text/plain; charset=utf-8",
        "content_base64": base64.b64encode(content).decode(),
    }
    ticket = await create_ticket(
        client, admin, message={"body_text": "Se vedhæftet", "attachments": [upload]}
    )
    reply = await client.post(
        f"/api/v1/tickets/{ticket['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Tak, her er den igen", "attachments": [upload]},
    )
    [attachment] = reply.json()["attachments"]
    assert attachment["filename"] == "kvittering æøå.txt"
    assert attachment["size"] == len(content)

    download = await client.get(
        f"/api/v1/attachments/{attachment['id']}/content", headers=admin.headers
    )
    assert download.status_code == 200
    assert download.content == content
    assert (
        "filename*=UTF-8''kvittering%20%C3%A6%C3%B8%C3%A5.txt"
        in download.headers["content-disposition"]
    )
    blobs = await session.scalar(
        select(func.count()).select_from(Blob).where(Blob.sha256 == attachment["sha256"])
    )
    assert blobs == 1

    bad = await client.post(
        f"/api/v1/tickets/{ticket['id']}/messages",
        headers=admin.headers,
        json={"body_text": "x", "attachments": [{**upload, "content_base64": "***"}]},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"].startswith("/body/attachments/0")


async def test_list_paginates_filters_and_sorts(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    queue_id = await make_queue(session, "Kundeservice")
    created = [
        await create_ticket(
            client,
            admin,
            subject=f"Sag {i}",
            priority=p,
            tags=tags,
            customer={"email": f"kunde{i % 2}@example.se"},
        )
        for i, (p, tags) in enumerate(
            [
                ("low", ["a"]),
                ("urgent", ["a", "b"]),
                ("normal", []),
                ("high", ["b"]),
                ("normal", ["a"]),
            ]
        )
    ]
    await client.patch(
        f"/api/v1/tickets/{created[1]['id']}",
        headers=admin.headers,
        json={"assignee_id": agent.id, "queue_id": queue_id, "status": "pending"},
    )

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/tickets", headers=admin.headers, params=params)).json()
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted((t["id"] for t in created), reverse=True)

    async def ids(**params: Any) -> list[int]:
        response = await client.get("/api/v1/tickets", headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids(status="pending") == [created[1]["id"]]
    assert await ids(status=["pending", "new"], sort="number") == [t["id"] for t in created]
    assert await ids(tag=["a", "b"]) == [created[1]["id"]]
    assert await ids(assignee_id=agent.id) == [created[1]["id"]]
    assert created[1]["id"] not in await ids(unassigned=True)
    assert await ids(queue_id=queue_id) == [created[1]["id"]]
    assert await ids(customer_id=created[0]["customer_id"], sort="created_at") == [
        created[0]["id"],
        created[2]["id"],
        created[4]["id"],
    ]
    by_priority = await ids(sort="-priority", limit=3)
    assert by_priority[:2] == [created[1]["id"], created[3]["id"]]
    by_priority_pages = []
    cursor = None
    for _ in range(3):
        params = {"sort": "priority", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/tickets", headers=admin.headers, params=params)).json()
        by_priority_pages += [t["priority"] for t in page["items"]]
        cursor = page["next_cursor"]
    assert by_priority_pages == ["low", "normal", "normal", "high", "urgent"]

    assert await ids(updated_since="2999-01-01T00:00:00Z") == []
    assert len(await ids(updated_since="2000-01-01T00:00:00Z")) == 5

    bad_cursor = await client.get(
        "/api/v1/tickets", headers=admin.headers, params={"cursor": "nonsense"}
    )
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["pointer"] == "/cursor"
    too_many = await client.get("/api/v1/tickets", headers=admin.headers, params={"limit": 1000})
    assert too_many.status_code == 422


async def test_customer_history_in_one_call(
    client: httpx.AsyncClient, admin: Caller, sending_mailbox: int
) -> None:
    first = await create_ticket(client, admin, subject="Første sag")
    second = await create_ticket(client, admin, subject="Anden sag")
    await client.post(
        f"/api/v1/tickets/{first['id']}/messages", headers=admin.headers, json={"body_text": "Svar"}
    )
    history = await client.get(
        f"/api/v1/customers/{first['customer_id']}/tickets", headers=admin.headers
    )
    assert history.status_code == 200, history.text
    items = history.json()["items"]
    assert [t["id"] for t in items] == [second["id"], first["id"]]
    assert [m["body_text"] for m in items[1]["messages"]] == [
        "Hej, min faktura er forkert. Venlig hilsen Søren",
        "Svar",
    ]
    missing = await client.get("/api/v1/customers/999999/tickets", headers=admin.headers)
    assert missing.status_code == 404


async def test_external_partner_sees_only_granted_queues_and_public_messages(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    partner = await make_agent("external")
    granted = await make_queue(session, "Outsourcet")
    hidden = await make_queue(session, "Intern")
    await session.execute(queue_grants.insert().values(queue_id=granted, agent_id=partner.id))
    visible_ticket = await create_ticket(client, admin, queue_id=granted)
    hidden_ticket = await create_ticket(client, admin, queue_id=hidden)
    unqueued = await create_ticket(client, admin)
    await client.post(
        f"/api/v1/tickets/{visible_ticket['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Kun for os", "public": False},
    )

    listed = await client.get("/api/v1/tickets", headers=partner.headers)
    assert [t["id"] for t in listed.json()["items"]] == [visible_ticket["id"]]
    for ticket in (hidden_ticket, unqueued):
        response = await client.get(f"/api/v1/tickets/{ticket['id']}", headers=partner.headers)
        assert response.status_code == 404
    messages = await client.get(
        f"/api/v1/tickets/{visible_ticket['id']}/messages", headers=partner.headers
    )
    assert [m["public"] for m in messages.json()["items"]] == [True]

    moved = await client.patch(
        f"/api/v1/tickets/{visible_ticket['id']}",
        headers=partner.headers,
        json={"queue_id": hidden},
    )
    assert moved.status_code == 422
    taken = await client.patch(
        f"/api/v1/tickets/{visible_ticket['id']}",
        headers=partner.headers,
        json={"assignee_id": partner.id, "status": "open"},
    )
    assert taken.status_code == 200, taken.text
    elsewhere = await client.post(
        "/api/v1/tickets", headers=partner.headers, json=ticket_body(queue_id=hidden)
    )
    assert elsewhere.status_code == 422
    assert elsewhere.json()["detail"] == f"Queue {hidden} does not exist."
    by_id = await client.post(
        "/api/v1/tickets",
        headers=partner.headers,
        json=ticket_body(queue_id=granted, customer={"id": hidden_ticket["customer_id"]}),
    )
    assert by_id.status_code == 403
    colleague = await make_agent("agent")
    await client.patch(
        f"/api/v1/tickets/{visible_ticket['id']}",
        headers=admin.headers,
        json={"assignee_id": colleague.id},
    )
    unassign = await client.patch(
        f"/api/v1/tickets/{visible_ticket['id']}",
        headers=partner.headers,
        json={"assignee_id": None},
    )
    assert unassign.status_code == 403


async def test_authentication_and_scopes(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    reader = await make_agent("agent", scopes=["read"])
    assert (await client.get("/api/v1/tickets", headers=reader.headers)).status_code == 200
    write = await client.post("/api/v1/tickets", headers=reader.headers, json=ticket_body())
    assert write.status_code == 403
    assert "write" in write.json()["detail"]

    anonymous = await client.get("/api/v1/tickets")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    unknown = await client.get("/api/v1/tickets", headers={"Authorization": "Bearer tkt_nope"})
    assert unknown.status_code == 401
    assert unknown.json()["type"].endswith("/unauthorized")


async def test_order_is_another_name_for_sort(client: httpx.AsyncClient, admin: Caller) -> None:
    created = [(await create_ticket(client, admin, subject=f"Sag {i}"))["id"] for i in range(3)]

    async def ids(**params: str) -> list[int]:
        response = await client.get("/api/v1/tickets", headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids(order="number") == created
    assert await ids(order="-number") == created[::-1]
    assert await ids(sort="number", order="number") == created
    assert await ids(order="due_at", sla="breached") == []
    both = await client.get(
        "/api/v1/tickets", headers=admin.headers, params={"sort": "number", "order": "-number"}
    )
    assert both.status_code == 422, both.text
    assert "`sort` (number) and `order` (-number)" in both.json()["detail"]
    assert [e["pointer"] for e in both.json()["errors"]] == ["/query/order"]


async def test_a_cursor_only_continues_its_own_order(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    for i in range(3):
        await create_ticket(client, admin, subject=f"Sag {i}")
    page = await client.get("/api/v1/tickets", headers=admin.headers, params={"limit": 1})
    cursor = page.json()["next_cursor"]
    for sort in ("number", "priority", "-updated_at"):
        mixed = await client.get(
            "/api/v1/tickets", headers=admin.headers, params={"cursor": cursor, "sort": sort}
        )
        assert mixed.status_code == 422, (sort, mixed.text)
        assert "-created_at" in mixed.json()["detail"]
