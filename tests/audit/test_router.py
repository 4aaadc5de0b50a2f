"""Reads of personal data are audited, the log filters and exports (CSV, JSON lines) with
Nordic letters intact, and verification answers over the API."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def test_opening_a_ticket_is_audited_with_source_address_and_request_id(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    ticket_id = await add_ticket(session)

    listed = await client.get("/api/v1/tickets", headers=agent.headers)
    opened = await client.get(
        f"/api/v1/tickets/{ticket_id}",
        headers=agent.headers | {"X-Request-ID": "open-ticket-1"},
        params={"include": "customer"},
    )
    missing = await client.get(f"/api/v1/tickets/{ticket_id + 1000}", headers=agent.headers)

    assert (listed.status_code, opened.status_code, missing.status_code) == (200, 200, 404)
    viewed = await audit_events(client, admin, action="ticket.viewed", actor_label=agent.email)
    assert [
        (e["entity_type"], e["entity_id"], e["actor_agent_id"], e["source_ip"], e["request_id"])
        for e in viewed
    ] == [("ticket", str(ticket_id), agent.id, "127.0.0.1", "open-ticket-1")]


async def test_listing_or_opening_a_customer_by_id_address_or_external_id_is_audited(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller
) -> None:
    agent = await make_agent("agent")
    created = await client.put(
        "/api/v1/customers/by-external/crm/Ø-17",
        headers=agent.headers,
        json={"name": "Åse Kjærgård", "emails": ["åse@blåbær.dk"]},
    )
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]

    for path, params in (
        ("/api/v1/customers", {}),
        (f"/api/v1/customers/{customer_id}", {}),
        ("/api/v1/customers/lookup", {"email": "Åse@Blåbær.dk"}),
        ("/api/v1/customers/by-external/crm/Ø-17", {}),
    ):
        response = await client.get(path, headers=agent.headers, params=params)
        assert response.status_code == 200, (path, response.text)

    viewed = await audit_events(client, admin, action="customer.viewed", actor_label=agent.email)
    # The list page shows the customer too: four reads.
    assert [(e["entity_id"], e["after"]) for e in viewed] == [(str(customer_id), None)] * 4


@pytest.fixture
async def history(session: AsyncSession) -> list[int]:
    """Four events an hour apart: two customer updates by an agent, one by the system, one
    ticket update."""
    rows = [
        ("søren@ærø.dk", "customer.updated", "customer", {"navn": "Åse Ødegård"}),
        ("mail-ingest", "customer.updated", "customer", {"navn": "Björn Äng"}),
        ("søren@ærø.dk", "customer.updated", "customer", {"by": "Tromsø", "tal": 3}),
        ("søren@ærø.dk", "ticket.updated", "ticket", {"emne": "Hæv, præcis"}),
    ]
    events = [
        AuditEvent(
            occurred_at=T0 + timedelta(hours=hour),
            actor_label=label,
            source_ip="10.0.0.7",
            request_id=f"r{hour}",
            action=action,
            entity_type=entity_type,
            entity_id="5",
            after=after,
        )
        for hour, (label, action, entity_type, after) in enumerate(rows)
    ]
    session.add_all(events)
    await session.flush()
    return [event.id for event in events]


PERIOD = {
    "occurred_after": T0.isoformat(),
    "occurred_before": (T0 + timedelta(hours=3)).isoformat(),
}


async def test_the_list_filters_by_actor_action_entity_and_period(
    client: httpx.AsyncClient, admin: Caller, history: list[int]
) -> None:
    async def ids(**params: str) -> list[int]:
        return [event["id"] for event in await audit_events(client, admin, **params)]

    assert await ids(actor_label="søren@ærø.dk", **PERIOD) == [history[2], history[0]]
    assert await ids(action="customer.updated", entity_id="5", **PERIOD) == history[2::-1]
    day = PERIOD | {"occurred_before": (T0 + timedelta(days=1)).isoformat()}
    assert await ids(entity_type="ticket", entity_id="5", **day) == [history[3]]
    later = PERIOD | {"occurred_after": (T0 + timedelta(minutes=30)).isoformat()}
    assert await ids(**later) == [history[2], history[1]]


async def test_the_export_streams_csv_and_json_lines_and_is_audited(
    client: httpx.AsyncClient, admin: Caller, history: list[int]
) -> None:
    params = {"action": "customer.updated", "actor_label": "søren@ærø.dk", **PERIOD}

    as_csv = await client.get(
        "/api/v1/audit-events/export", headers=admin.headers, params=params | {"format": "csv"}
    )
    as_jsonl = await client.get(
        "/api/v1/audit-events/export", headers=admin.headers, params=params | {"format": "jsonl"}
    )

    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == 'attachment; filename="audit-events.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8"))))
    assert [(int(r["id"]), r["actor_label"], r["request_id"]) for r in rows] == [
        (history[0], "søren@ærø.dk", "r0"),
        (history[2], "søren@ærø.dk", "r2"),
    ]
    assert json.loads(rows[0]["after"]) == {"navn": "Åse Ødegård"}
    assert rows[0]["before"] == ""
    assert rows[1]["occurred_at"] == "2026-03-01T10:00:00Z"

    assert as_jsonl.status_code == 200, as_jsonl.text
    assert as_jsonl.headers["content-type"] == "application/x-ndjson; charset=utf-8"
    lines = [json.loads(line) for line in as_jsonl.content.decode("utf-8").splitlines()]
    assert [(line["id"], line["after"]) for line in lines] == [
        (history[0], {"navn": "Åse Ødegård"}),
        (history[2], {"by": "Tromsø", "tal": 3}),
    ]

    exports = await audit_events(client, admin, action="audit.exported")
    assert [e["after"]["format"] for e in exports] == ["jsonl", "csv"]
    assert exports[0]["actor_agent_id"] == admin.id
    assert exports[0]["after"]["filters"]["actor_label"] == "søren@ærø.dk"


async def test_an_unknown_export_format_is_refused(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    response = await client.get(
        "/api/v1/audit-events/export", headers=admin.headers, params={"format": "xlsx"}
    )
    assert response.status_code == 422


async def test_verify_answers_with_the_chain_and_what_is_not_sealed_yet(
    client: httpx.AsyncClient, admin: Caller, history: list[int]
) -> None:
    response = await client.get("/api/v1/audit-events/verify", headers=admin.headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True
    assert result["first_broken"] is None
    # This test's transaction is still running: its events wait to be sealed.
    assert result["unsealed"] >= len(history)
