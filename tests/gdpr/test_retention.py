"""Retention per queue: the preview reports what is due, the scheduler's pass anonymises or
deletes tickets closed longer than their queue keeps them, in batches, once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.audit.models import AuditRedaction
from app.core.clock import utcnow
from app.gdpr import retention
from app.gdpr.retention import months_before, run_retention_pass
from app.gdpr.service import Scope
from app.queues.models import Queue
from app.tickets.models import Channel, Message, MessageDirection, Ticket, TicketStatus
from tests.conftest import Caller
from tests.helpers import add_ticket, audit_events
from tests.test_cli import cli_env, run_cli

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
    assert not by_queue["Faktura"]["confirmed"]

    assert await run_retention_pass(maker, now) == 0, "nothing before a confirmation"
    await _confirm(client, admin, kept["id"], 6, "anonymise")
    await _confirm(client, admin, dropped["id"], 12, "delete")
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


async def _confirm(
    client: httpx.AsyncClient, admin: Caller, queue_id: int, months: int, action: str
) -> httpx.Response:
    response = await client.post(
        f"{API}/retention/queues/{queue_id}/confirm",
        headers=admin.headers,
        json={"retention_months": months, "retention_action": action},
    )
    assert response.status_code in (200, 409), response.text
    return response


async def test_the_pass_acts_only_on_a_policy_confirmed_after_its_preview(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    queue = await _queue(client, admin, "Faktura", retention_months=6)
    due = await _closed(session, queue["id"], now - timedelta(days=400))

    assert await run_retention_pass(maker, now) == 0
    wrong = await _confirm(client, admin, queue["id"], 3, "anonymise")
    assert wrong.status_code == 409, "not the policy the preview showed"
    confirmed = await _confirm(client, admin, queue["id"], 6, "anonymise")
    assert confirmed.status_code == 200
    assert (confirmed.json()["confirmed"], confirmed.json()["tickets"]) == (True, 1)
    [event] = await audit_events(client, admin, action="retention.confirmed")
    assert event["after"] == {"retention_months": 6, "action": "anonymise", "tickets": 1}
    # A changed policy waits for its own confirmation.
    changed = await client.patch(
        f"{API}/queues/{queue['id']}", headers=admin.headers, json={"retention_action": "delete"}
    )
    assert changed.status_code == 200, changed.text
    preview = await client.get(f"{API}/retention/preview", headers=admin.headers)
    assert [q["confirmed"] for q in preview.json()["queues"]] == [False]
    assert await run_retention_pass(maker, now) == 0
    ticket = await session.get(Ticket, due)
    assert ticket is not None
    await session.refresh(ticket)
    assert ticket.subject != "[erased]"

    assert (await _confirm(client, admin, queue["id"], 6, "delete")).status_code == 200
    assert await run_retention_pass(maker, now) == 1
    assert await session.scalar(select(Ticket.id).where(Ticket.id == due)) is None


async def test_a_ticket_that_cannot_be_handled_is_skipped_not_blocking_the_queue(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = utcnow()
    queue = await _queue(client, admin, "Faktura", retention_months=6)
    await _confirm(client, admin, queue["id"], 6, "anonymise")
    broken, *fine = [
        await _closed(session, queue["id"], now - timedelta(days=days)) for days in (400, 390, 380)
    ]
    original = retention.erase_content

    async def failing(session: AsyncSession, scope: Scope, counts: Counter[str]) -> Any:
        if broken in scope.ticket_ids:
            await session.execute(text("SELECT 1/0"))  # a database error mid-way
        return await original(session, scope, counts)

    monkeypatch.setattr(retention, "erase_content", failing)

    assert await run_retention_pass(maker, now, batch=2) == 2
    assert await run_retention_pass(maker, now, batch=2) == 0, "the others are done"

    subjects = dict(
        (
            await session.execute(
                select(Ticket.id, Ticket.subject).where(Ticket.id.in_([broken, *fine]))
            )
        ).all()
    )
    assert subjects[broken] != "[erased]"
    assert {subjects[t] for t in fine} == {"[erased]"}
    assert f"'ticket_id': {broken}" in caplog.text or str(broken) in caplog.text


async def test_retention_redacts_again_what_an_erasure_already_redacted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    """Ticket B names customer A: A's erasure redacts B's audit events once, B's retention
    a second time (it used to fail on the first redaction, and stuck the queue)."""
    now = utcnow()
    queue = await _queue(client, admin, "Faktura", retention_months=6)
    await _confirm(client, admin, queue["id"], 6, "anonymise")
    person = await client.post(
        f"{API}/customers",
        headers=admin.headers,
        json={"name": "Ida Holmgaard", "emails": ["ida@example.dk"]},
    )
    assert person.status_code == 201, person.text
    created = await client.post(
        f"{API}/tickets",
        headers=admin.headers,
        json={
            "subject": "Klage fra Ida Holmgaard",
            "customer": {"email": "ole@example.no"},
            "message": {"body_text": "Ole skriver om Ida Holmgaard."},
            "queue_id": queue["id"],
            "tags": ["klage"],
        },
    )
    assert created.status_code == 201, created.text
    ticket_id = created.json()["id"]
    erase = await client.post(
        f"{API}/customers/{person.json()['id']}/erase",
        headers=admin.headers,
        json={"reason": "Anmodning"},
    )
    assert erase.status_code == 200, erase.text
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(status=TicketStatus.closed, closed_at=now - timedelta(days=400))
    )

    assert await run_retention_pass(maker, now) == 1

    redactions = (
        await session.execute(
            select(AuditRedaction.event_id, func.count())
            .group_by(AuditRedaction.event_id)
            .having(func.count() > 1)
        )
    ).all()
    assert redactions, "an audit event about the ticket was redacted twice"


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


async def test_the_command_line_previews_retention_per_queue(
    committed_database: tuple[str, async_sessionmaker[AsyncSession]], tmp_path: Path
) -> None:
    url, committed = committed_database
    async with committed.begin() as session:
        queue = Queue(name="Fakturaer CLI", retention_months=6)
        session.add(queue)
        await session.flush()
        await _closed(session, queue.id, utcnow() - timedelta(days=400))
    env = cli_env(tmp_path, database_url=url)

    shown = await asyncio.to_thread(run_cli, "retention", "preview", env=env, cwd=tmp_path)
    helped = await asyncio.to_thread(
        run_cli, "retention", "preview", "--help", env=env, cwd=tmp_path
    )

    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if "Fakturaer CLI" in line)
    assert "anonymise after 6 months: 1 ticket(s)" in line
    assert line.endswith("NOT confirmed: the pass leaves it alone")
    assert helped.returncode == 0
    assert "Changes nothing" in helped.stdout
