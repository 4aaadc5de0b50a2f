"""Retention per queue: the preview reports what is due, the scheduler's pass anonymises or
deletes tickets closed longer than their queue keeps them, in batches, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.gdpr.retention import months_before, run_retention_pass
from app.tickets.models import Channel, Message, MessageDirection, Ticket, TicketStatus
from tests.conftest import Caller
from tests.helpers import add_ticket, audit_events

API = "/api/v1"


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on the test's transaction; a pass's commits become savepoints."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


def test_months_are_calendar_months_ending_on_the_shorter_month_s_last_day() -> None:
    assert months_before(datetime(2026, 8, 31, 9, tzinfo=UTC), 6) == datetime(
        2026, 2, 28, 9, tzinfo=UTC
    )
    assert months_before(datetime(2026, 3, 15, tzinfo=UTC), 15) == datetime(
        2024, 12, 15, tzinfo=UTC
    )


async def _queue(client: httpx.AsyncClient, admin: Caller, name: str, **fields: Any) -> Any:
    response = await client.post(
        f"{API}/queues", headers=admin.headers, json={"name": name, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _closed(session: AsyncSession, queue_id: int, closed_at: datetime) -> int:
    ticket_id = await add_ticket(
        session,
        queue_id=queue_id,
        subject="Søren Ærøs faktura",
        status=TicketStatus.closed,
        closed_at=closed_at,
        tags=["faktura"],
    )
    session.add(
        Message(
            ticket_id=ticket_id,
            direction=MessageDirection.inbound,
            is_public=True,
            channel=Channel.email,
            body_text="Hej, min faktura er forkert.",
        )
    )
    await session.flush()
    return ticket_id


async def test_the_preview_reports_and_the_pass_anonymises_or_deletes_what_is_due(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    kept = await _queue(client, admin, "Faktura", retention_months=6)
    dropped = await _queue(client, admin, "Spam", retention_months=12, retention_action="delete")
    forever = await _queue(client, admin, "Arkiv")
    assert (kept["retention_months"], kept["retention_action"]) == (6, "anonymise")
    assert forever["retention_months"] is None
    oldest = now - timedelta(days=250)
    due = [
        await _closed(session, kept["id"], oldest),
        await _closed(session, kept["id"], now - timedelta(days=200)),
    ]
    recent = await _closed(session, kept["id"], now - timedelta(days=150))
    still_open = await add_ticket(session, queue_id=kept["id"], subject="Åben")
    expired_spam = await _closed(session, dropped["id"], now - timedelta(days=400))
    young_spam = await _closed(session, dropped["id"], now - timedelta(days=300))
    archived = await _closed(session, forever["id"], now - timedelta(days=4000))

    preview = await client.get(f"{API}/retention/preview", headers=admin.headers)

    assert preview.status_code == 200, preview.text
    by_queue = {q["queue_name"]: q for q in preview.json()["queues"]}
    assert set(by_queue) == {"Faktura", "Spam"}
    assert by_queue["Faktura"]["tickets"] == 2
    assert by_queue["Faktura"]["action"] == "anonymise"
    assert datetime.fromisoformat(by_queue["Faktura"]["oldest_closed_at"]) == oldest
    assert (by_queue["Spam"]["tickets"], by_queue["Spam"]["action"]) == (1, "delete")

    assert await run_retention_pass(maker, now, batch=1) == 3

    rows = {
        t.id: t
        for t in await session.scalars(
            select(Ticket).where(Ticket.queue_id.in_([kept["id"], dropped["id"], forever["id"]]))
        )
    }
    for ticket_id in due:
        await session.refresh(rows[ticket_id])
        assert rows[ticket_id].subject == "[erased]"
        assert rows[ticket_id].tags == []
        assert rows[ticket_id].status is TicketStatus.closed
    assert expired_spam not in rows
    for untouched in (recent, still_open, young_spam, archived):
        assert rows[untouched].subject != "[erased]"
    with_messages = set(await session.scalars(select(Message.ticket_id)))
    assert not with_messages & {*due, expired_spam}
    assert {recent, young_spam, archived} <= with_messages

    applied = await audit_events(client, admin, action="retention.applied")
    assert sorted(t for e in applied for t in e["after"]["ticket_ids"]) == sorted(
        [*due, expired_spam]
    )
    assert {e["actor_label"] for e in applied} == {"retention"}
    assert await run_retention_pass(maker, now) == 0, "each ticket is handled once"
    again = await client.get(f"{API}/retention/preview", headers=admin.headers)
    assert {q["queue_name"]: q["tickets"] for q in again.json()["queues"]} == {
        "Faktura": 0,
        "Spam": 0,
    }


async def test_a_retention_period_is_whole_months_and_set_by_admins(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    queue = await _queue(client, admin, "Faktura")
    path = f"{API}/queues/{queue['id']}"
    for bad in ({"retention_months": 0}, {"retention_action": None}, {"retention_action": "x"}):
        response = await client.patch(path, headers=admin.headers, json=bad)
        assert response.status_code == 422, (bad, response.text)
    changed = await client.patch(
        path, headers=admin.headers, json={"retention_months": 24, "retention_action": "delete"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["retention_months"], changed.json()["retention_action"]) == (
        24,
        "delete",
    )
