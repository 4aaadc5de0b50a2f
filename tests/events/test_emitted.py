"""Each event type comes from the real call or mail that causes it, in that call's transaction,
with the documented data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event
from app.ingest.models import InboundStatus
from tests.conftest import Caller
from tests.helpers import build_mail
from tests.ingest.test_service import CONFIG, SECRET, ingest


@pytest.fixture
async def emitted(session: AsyncSession) -> Any:
    """``await emitted()``: the events written since the test started, in order, as
    ``(type, entity, entity_id, data)``; each call returns only the new ones."""
    seen = await session.scalar(select(func.coalesce(func.max(Event.id), 0)))

    async def new_events() -> list[tuple[str, str, int | None, dict[str, Any]]]:
        nonlocal seen
        rows = list(await session.scalars(select(Event).where(Event.id > seen).order_by(Event.id)))
        seen = rows[-1].id if rows else seen
        for row in rows:
            assert row.data.pop("schema_version") == 1
        return [(row.type, row.entity, row.entity_id, row.data) for row in rows]

    return new_events


async def create_ticket(client: httpx.AsyncClient, admin: Caller, **fields: Any) -> Any:
    body = {
        "subject": "Pakken er ikke kommet",
        "customer": {"email": "ingrid@example.no", "name": "Ingrid"},
        "message": {"body_text": "Hvor er pakken min?"},
        **fields,
    }
    response = await client.post("/api/v1/tickets", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_new_ticket_emits_its_customer_ticket_and_first_message(
    client: httpx.AsyncClient, admin: Caller, emitted: Any
) -> None:
    ticket = await create_ticket(client, admin)
    [customer, created, message] = await emitted()
    assert customer == (
        "customer.created",
        "customer",
        ticket["customer_id"],
        {"customer_id": ticket["customer_id"], "organisation_id": None},
    )
    assert created == (
        "ticket.created",
        "ticket",
        ticket["id"],
        {
            "ticket_id": ticket["id"],
            "number": ticket["number"],
            "subject": "Pakken er ikke kommet",
            "status": "new",
            "priority": "normal",
            "channel": "api",
            "queue_id": None,
            "assignee_id": None,
            "team_id": None,
            "customer_id": ticket["customer_id"],
        },
    )
    assert message[:2] == ("message.created", "message")
    assert message[3] == {
        "message_id": message[2],
        "ticket_id": ticket["id"],
        "ticket_number": ticket["number"],
        "direction": "inbound",
        "public": True,
        "author_agent_id": None,
        "author_customer_id": ticket["customer_id"],
    }


async def test_an_update_emits_the_changed_fields_an_assignment_and_a_status_change(
    client: httpx.AsyncClient, admin: Caller, emitted: Any
) -> None:
    ticket = await create_ticket(client, admin)
    await emitted()
    url = f"/api/v1/tickets/{ticket['id']}"
    response = await client.patch(
        url, headers=admin.headers, json={"priority": "high", "assignee_id": admin.id}
    )
    assert response.status_code == 200, response.text
    ids = {"ticket_id": ticket["id"], "number": ticket["number"]}
    assert await emitted() == [
        (
            "ticket.updated",
            "ticket",
            ticket["id"],
            {
                **ids,
                "changes": {
                    "priority": {"from": "normal", "to": "high"},
                    "assignee_id": {"from": None, "to": admin.id},
                },
            },
        ),
        (
            "ticket.assigned",
            "ticket",
            ticket["id"],
            {
                **ids,
                "assignee_id": admin.id,
                "team_id": None,
                "previous_assignee_id": None,
                "previous_team_id": None,
            },
        ),
    ]

    await client.patch(url, headers=admin.headers, json={"status": "solved"})
    [updated, status] = await emitted()
    assert updated[3]["changes"]["status"] == {"from": "new", "to": "solved"}
    assert set(updated[3]["changes"]) == {"status", "solved_at"}
    assert status == (
        "ticket.status_changed",
        "ticket",
        ticket["id"],
        {**ids, "status": "solved", "previous_status": "new"},
    )

    await client.patch(url, headers=admin.headers, json={"status": "solved"})
    assert await emitted() == []


async def test_replies_and_notes_emit_message_events_without_their_text(
    client: httpx.AsyncClient, admin: Caller, emitted: Any, sending_mailbox: int
) -> None:
    ticket = await create_ticket(client, admin)
    await emitted()
    url = f"/api/v1/tickets/{ticket['id']}/messages"
    reply = await client.post(url, headers=admin.headers, json={"body_text": "Vi spør DHL"})
    assert reply.status_code == 201
    note = await client.post(
        url, headers=admin.headers, json={"body_text": "Ring til DHL", "public": False}
    )
    assert note.status_code == 201
    reply_events = await emitted()
    assert reply_events[0][:3] == ("message.created", "message", reply.json()["id"])
    assert reply_events[0][3]["direction"] == "outbound"
    assert reply_events[0][3]["public"] is True
    assert reply_events[0][3]["author_agent_id"] == admin.id
    # The first public reply opens the ticket.
    assert [e[0] for e in reply_events[1:3]] == ["ticket.updated", "ticket.status_changed"]
    assert reply_events[2][3]["status"] == "open"
    [*_, note_event] = reply_events
    assert note_event[:3] == ("message.created", "message", note.json()["id"])
    assert note_event[3]["public"] is False
    assert "DHL" not in str(reply_events)


async def test_customers_emit_created_and_the_names_of_changed_fields(
    client: httpx.AsyncClient, admin: Caller, emitted: Any
) -> None:
    created = await client.post(
        "/api/v1/customers",
        headers=admin.headers,
        json={"name": "Åke", "emails": ["ake@example.se"]},
    )
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    url = f"/api/v1/customers/{customer_id}"
    changes = {"phone": "+46 8 123 456", "emails": ["ake@example.se", "ake@firma.se"]}
    await client.patch(url, headers=admin.headers, json=changes)
    await client.patch(url, headers=admin.headers, json={"phone": "+46 8 123 456"})
    assert await emitted() == [
        (
            "customer.created",
            "customer",
            customer_id,
            {"customer_id": customer_id, "organisation_id": None},
        ),
        (
            "customer.updated",
            "customer",
            customer_id,
            {"customer_id": customer_id, "fields": ["emails", "phone"]},
        ),
    ]


async def test_a_routing_rule_change_is_a_ticket_update(
    client: httpx.AsyncClient, admin: Caller, emitted: Any
) -> None:
    rules = {
        "rules": [
            {
                "id": "akut",
                "name": "Urgent by subject",
                "triggers": ["ticket_created"],
                "when": {"field": "message.subject", "op": "regex", "value": "^AKUT"},
                "actions": [{"type": "set_priority", "priority": "urgent"}],
            }
        ]
    }
    saved = await client.put("/api/v1/rules", headers=admin.headers, json=rules)
    assert saved.status_code == 200, saved.text
    ticket = await create_ticket(client, admin, subject="AKUT: ingen strøm")
    [*_, routed] = await emitted()
    assert routed == (
        "ticket.updated",
        "ticket",
        ticket["id"],
        {
            "ticket_id": ticket["id"],
            "number": ticket["number"],
            "changes": {"priority": {"from": "normal", "to": "urgent"}},
        },
    )


async def test_mail_emits_ticket_events_and_a_quarantined_mail_says_why(
    session: AsyncSession, emitted: Any
) -> None:
    inbound_id = await ingest.receive(session, build_mail(), source="imap")
    outcome = await ingest.process(session, inbound_id, CONFIG)
    types = [(event[0], event[3].get("ticket_id")) for event in await emitted()]
    assert types == [
        ("customer.created", None),
        ("ticket.created", outcome.ticket_id),
        ("message.created", outcome.ticket_id),
    ]

    tiny = ingest.IngestConfig(secret_key=SECRET, policy=CONFIG.policy, max_bytes=100)
    raw = build_mail(message_id="<for-stor@example.dk>")
    quarantined = await ingest.process(
        session, await ingest.receive(session, raw, source="imap"), tiny
    )
    assert quarantined.status is InboundStatus.quarantined
    [(type_, entity, entity_id, data)] = await emitted()
    assert (type_, entity, entity_id) == (
        "mail.quarantined",
        "inbound_mail",
        quarantined.inbound_id,
    )
    assert data["inbound_id"] == quarantined.inbound_id
    assert data["mailbox_id"] is None
    assert "limit" in data["reason"]
