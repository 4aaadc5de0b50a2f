"""Reads of personal data are audited: the raw mail (unmasked evidence, admins only, with a
reason), a ticket's messages, a customer's history and search results, attachment files."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events, build_mail
from tests.ingest.test_service import ingest_raw

API = "/api/v1"
CPR = "010190-1234"


async def test_the_raw_mail_is_for_admins_with_a_reason_unmasked_and_audited(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, make_agent: MakeAgent
) -> None:
    mail = build_mail(subject="Hej", body=f"Mit CPR er {CPR}")
    outcome = await ingest_raw(session, mail)
    url = f"{API}/ingest/inbound/{outcome.inbound_id}/raw"
    reason = {"reason": "The customer disputes what they sent"}
    supervisor = await make_agent("supervisor")
    assert (await client.get(url, headers=supervisor.headers, params=reason)).status_code == 403
    for missing in ({}, {"reason": ""}, {"reason": "   "}):
        refused = await client.get(url, headers=admin.headers, params=missing)
        assert refused.status_code == 422, missing
    assert await audit_events(client, admin, action="inbound_mail.raw_viewed") == []

    raw = await client.get(url, headers=admin.headers, params=reason)
    assert raw.status_code == 200, raw.text
    assert raw.content == mail
    [event] = await audit_events(client, admin, action="inbound_mail.raw_viewed")
    assert (event["entity_type"], event["entity_id"]) == ("inbound_mail", str(outcome.inbound_id))
    assert event["actor_agent_id"] == admin.id
    assert event["after"] == reason


async def test_lists_of_personal_data_and_downloads_are_audited_per_record(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    upload = {"filename": "kontrakt.txt", "content_base64": "aGVq"}
    created = await client.post(
        f"{API}/tickets",
        headers=admin.headers,
        json={
            "subject": "Kontrakt",
            "customer": {"email": "laest@example.dk", "name": "Læst Person"},
            "message": {"body_text": "Se vedhæftet", "attachments": [upload]},
        },
    )
    assert created.status_code == 201, created.text
    ticket_id, customer_id = created.json()["id"], created.json()["customer_id"]
    note = await client.post(
        f"{API}/tickets/{ticket_id}/messages",
        headers=admin.headers,
        json={"body_text": "Intern", "public": False},
    )
    assert note.status_code == 201, note.text

    def by_agent(events: list[dict[str, object]]) -> list[tuple[object, object]]:
        return sorted(
            (e["action"], e["entity_id"]) for e in events if e["actor_agent_id"] == agent.id
        )

    messages = await client.get(f"{API}/tickets/{ticket_id}/messages", headers=agent.headers)
    assert messages.status_code == 200, messages.text
    ids = [m["id"] for m in messages.json()["items"]]
    assert len(ids) == 2
    viewed = await audit_events(client, admin, entity_type="message", action="message.viewed")
    assert by_agent(viewed) == sorted(("message.viewed", str(i)) for i in ids)

    history = await client.get(f"{API}/customers/{customer_id}/tickets", headers=agent.headers)
    assert history.status_code == 200, history.text
    assert by_agent(await audit_events(client, admin, action="customer.history_viewed")) == [
        ("customer.history_viewed", str(customer_id))
    ]
    assert by_agent(await audit_events(client, admin, action="ticket.viewed")) == [
        ("ticket.viewed", str(ticket_id))
    ]

    listed = await client.get(f"{API}/customers", headers=agent.headers)
    assert listed.status_code == 200
    on_page = sorted(("customer.viewed", str(c["id"])) for c in listed.json()["items"])
    assert ("customer.viewed", str(customer_id)) in on_page
    assert by_agent(await audit_events(client, admin, action="customer.viewed")) == on_page
    for params in ({"email": "laest@example.dk"}, {"q": "Læst"}, {"q": "nobody-here"}):
        found = await client.get(f"{API}/customers", headers=agent.headers, params=params)
        assert found.status_code == 200, found.text
    assert by_agent(await audit_events(client, admin, action="customer.viewed")) == sorted(
        [*on_page, ("customer.viewed", str(customer_id)), ("customer.viewed", str(customer_id))]
    )

    included = await client.get(
        f"{API}/tickets", headers=agent.headers, params={"include": "messages"}
    )
    assert included.status_code == 200, included.text
    shown = [m["id"] for ms in included.json()["included"]["messages"].values() for m in ms]
    assert set(ids) <= set(shown)
    viewed = await audit_events(client, admin, entity_type="message", action="message.viewed")
    assert by_agent(viewed) == sorted(
        [*(("message.viewed", str(i)) for i in ids), *(("message.viewed", str(i)) for i in shown)]
    )

    attachment_id = messages.json()["items"][0]["attachments"][0]["id"]
    content = await client.get(f"{API}/attachments/{attachment_id}/content", headers=agent.headers)
    assert content.status_code == 200
    assert by_agent(await audit_events(client, admin, action="attachment.downloaded")) == [
        ("attachment.downloaded", str(attachment_id))
    ]
