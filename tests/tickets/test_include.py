from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.queues.models import CustomerFields, queue_grants
from app.tickets import service
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events
from tests.tickets.test_router import create_ticket, make_queue

URL = "/api/v1/tickets"


@contextmanager
def counted_selects(session: AsyncSession) -> Iterator[list[str]]:
    """The SELECT statements the session's connection runs inside the block."""
    statements: list[str] = []

    def seen(*args: object) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = session.bind.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


async def test_list_side_loads_customers_and_assignees_with_a_query_per_kind(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agents = [await make_agent("agent") for _ in range(3)]
    tickets = [
        await create_ticket(
            client,
            admin,
            assignee_id=agents[number % 3].id,
            customer={"email": f"kunde{number}@blåbær.dk", "name": f"Kunde {number}"},
        )
        for number in range(12)
    ]
    plain = await client.get(URL, headers=admin.headers, params={"limit": 5})
    assert "included" not in plain.json()
    with counted_selects(session) as plain_selects:
        await client.get(URL, headers=admin.headers, params={"limit": 50})
    with counted_selects(session) as selects:
        response = await client.get(
            URL, headers=admin.headers, params={"limit": 50, "include": "customer,assignee"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == 12
    included = body["included"]
    assert set(included) == {"customers", "agents"}
    assert {int(k) for k in included["customers"]} == {t["customer_id"] for t in tickets}
    first = tickets[0]
    assert included["customers"][str(first["customer_id"])]["emails"] == ["kunde0@blåbær.dk"]
    assert included["agents"] == {
        str(a.id): {"id": a.id, "name": "Agent Agent", "active": True} for a in agents
    }
    # Customers (with their addresses and external ids) and agents: a fixed number of
    # queries, however many tickets.
    assert len(selects) - len(plain_selects) == 4


async def test_single_ticket_side_loads_messages(client: httpx.AsyncClient, admin: Caller) -> None:
    ticket = await create_ticket(client, admin)
    await client.post(
        f"{URL}/{ticket['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Intern note", "public": False},
    )
    response = await client.get(
        f"{URL}/{ticket['id']}",
        headers=admin.headers,
        params={"include": "customer,assignee,messages"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == f'"{body["version"]}"'
    assert body["id"] == ticket["id"]
    included = body["included"]
    assert list(included["customers"]) == [str(ticket["customer_id"])]
    assert included["agents"] == {}
    messages = included["messages"][str(ticket["id"])]
    assert [m["public"] for m in messages] == [True, False]
    only_messages = await client.get(
        f"{URL}/{ticket['id']}", headers=admin.headers, params={"include": "messages"}
    )
    assert set(only_messages.json()["included"]) == {"messages"}
    plain = await client.get(f"{URL}/{ticket['id']}", headers=admin.headers)
    assert "included" not in plain.json()


async def test_unknown_or_unsupported_include_is_422(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    ticket = await create_ticket(client, admin)
    for url, value in [
        (URL, "customer,owner"),
        (URL, "customers"),
        (f"{URL}/{ticket['id']}", "tags"),
    ]:
        response = await client.get(url, headers=admin.headers, params={"include": value})
        assert response.status_code == 422, (url, value)


async def test_external_partners_get_no_customers_and_public_messages_only(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    partner = await make_agent("external")
    queue = await make_queue(session, "Outsourcet")
    await session.execute(queue_grants.insert().values(queue_id=queue, agent_id=partner.id))
    ticket = await create_ticket(client, admin, queue_id=queue, assignee_id=partner.id)
    await client.post(
        f"{URL}/{ticket['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Kun for os", "public": False},
    )
    url = f"{URL}/{ticket['id']}"
    for path in (URL, url):
        refused = await client.get(path, headers=partner.headers, params={"include": "customer"})
        assert refused.status_code == 403
    response = await client.get(
        url, headers=partner.headers, params={"include": "assignee,messages"}
    )
    assert response.status_code == 200, response.text
    included = response.json()["included"]
    assert list(included["agents"]) == [str(partner.id)]
    assert [m["public"] for m in included["messages"][str(ticket["id"])]] == [True]


async def test_side_loaded_customers_are_audited_as_read(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    tickets = [
        await create_ticket(client, admin, customer={"email": f"læser{n}@example.dk"})
        for n in range(2)
    ]
    response = await client.get(
        URL, headers=agent.headers, params={"include": "customer", "limit": 50}
    )
    assert response.status_code == 200, response.text
    single = await client.get(
        f"{URL}/{tickets[0]['id']}", headers=agent.headers, params={"include": "customer"}
    )
    assert single.status_code == 200, single.text
    viewed = await audit_events(client, admin, action="customer.viewed")
    by_agent = [e["entity_id"] for e in viewed if e["actor_agent_id"] == agent.id]
    first, second = (str(t["customer_id"]) for t in tickets)
    assert sorted(by_agent) == sorted([first, first, second])


async def test_list_side_loads_the_latest_messages_of_each_ticket_masked(
    client: httpx.AsyncClient,
    admin: Caller,
    make_agent: MakeAgent,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    sending_mailbox: int,
) -> None:
    monkeypatch.setattr(service, "MESSAGES_INCLUDED", 2)
    partner = await make_agent("external")
    queue = await make_queue(session, "Partner")
    await session.execute(
        queue_grants.insert().values(
            queue_id=queue, agent_id=partner.id, customer_fields=CustomerFields.name
        )
    )
    long = await create_ticket(client, admin, queue_id=queue)
    short = await create_ticket(client, admin, queue_id=queue)
    for body, public in [("CPR 010190-1234", True), ("Note", False), ("Svar", True)]:
        added = await client.post(
            f"{URL}/{long['id']}/messages",
            headers=admin.headers,
            json={"body_text": body, "public": public},
        )
        assert added.status_code == 201, added.text

    def texts(response: httpx.Response, ticket: dict[str, object]) -> list[str]:
        assert response.status_code == 200, response.text
        messages = response.json()["included"]["messages"]
        return [m["body_text"] for m in messages[str(ticket["id"])]]

    listed = await client.get(URL, headers=admin.headers, params={"include": "messages"})
    assert texts(listed, long) == ["Note", "Svar"]
    assert len(texts(listed, short)) == 1
    for_partner = await client.get(
        URL, headers=partner.headers, params={"include": "messages,customer"}
    )
    assert texts(for_partner, long) == ["CPR ******-**34", "Svar"]
    single = await client.get(
        f"{URL}/{long['id']}", headers=admin.headers, params={"include": "messages"}
    )
    assert texts(single, long) == ["Note", "Svar"]
