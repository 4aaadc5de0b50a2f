"""The scheduler's loop, its command, and passes in two worker processes at once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli import app
from app.customers.models import Customer
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine
from app.events.models import Event
from app.followups.models import FollowUp
from app.routing.models import RoutingTrace, RuleSetVersion
from app.scheduler.models import AutomationFiring
from app.scheduler.service import run_automation_pass
from app.scheduler.worker import Scheduler
from app.sla import service as sla
from app.sla.models import SlaPolicy
from app.tickets.models import Channel, Ticket, TicketPriority, TicketStatus
from tests.conftest import _drop_database, _recreate_database
from tests.scheduler.test_automations import CONFIG
from tests.test_cli import cli_env, run_cli

RAISE_AFTER_AN_HOUR = {
    "rules": [
        {
            "id": "old",
            "name": "Older than an hour",
            "triggers": ["scheduled"],
            "when": {"field": "ticket.hours_since_created", "op": "gte", "value": 1},
            "actions": [{"type": "raise_priority"}],
        }
    ]
}


@pytest.fixture(scope="module")
async def committed_url(database_url: str) -> AsyncIterator[str]:
    """A migrated database of this module's own, whose transactions really commit (several
    connections see each other's work), with one scheduled rule in force. Each test adds
    tickets of its own; the tickets of the tests before have already fired."""
    name = f"ticketry_scheduler_{os.getpid()}"
    url = await _recreate_database(database_url, name)
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade_to_head(engine)
        async with async_sessionmaker(engine).begin() as session:
            session.add(RuleSetVersion(version=1, definition=RAISE_AFTER_AN_HOUR))
    finally:
        await engine.dispose()
    yield url
    await _drop_database(database_url, name)


@pytest.fixture
async def committed(committed_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(committed_url, pool_size=4)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def seed(maker: async_sessionmaker[AsyncSession], tickets: int) -> list[int]:
    async with maker.begin() as session:
        customer = Customer(name="Kunde")
        session.add(customer)
        await session.flush()
        added = [
            Ticket(
                subject=f"Sag {n}",
                status=TicketStatus.open,
                priority=TicketPriority.normal,
                channel=Channel.email,
                customer_id=customer.id,
                tags=[],
                custom_fields={},
            )
            for n in range(tickets)
        ]
        session.add_all(added)
        await session.flush()
        return [ticket.id for ticket in added]


async def test_two_passes_at_once_fire_a_rule_once_per_ticket(
    committed: async_sessionmaker[AsyncSession],
) -> None:
    ids = await seed(committed, 30)
    now = datetime.now(UTC) + timedelta(hours=2)
    first, second = await asyncio.gather(
        run_automation_pass(committed, now, config=CONFIG, batch=4),
        run_automation_pass(committed, now, config=CONFIG, batch=4),
    )
    assert first + second == 30
    async with committed() as session:
        priorities = await session.scalars(
            select(Ticket.priority).where(Ticket.id.in_(ids)).distinct()
        )
        assert list(priorities) == [TicketPriority.high]
        fired = select(func.count()).where(AutomationFiring.ticket_id.in_(ids))
        assert await session.scalar(fired) == 30
        traced = select(func.count()).where(RoutingTrace.ticket_id.in_(ids))
        assert await session.scalar(traced) == 30


async def test_the_loop_stops_between_passes_when_told() -> None:
    stop = asyncio.Event()
    ran: list[str] = []

    async def first(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
        ran.append("first")
        stop.set()
        return 1

    async def second(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
        ran.append("second")
        return 0

    scheduler = Scheduler(
        async_sessionmaker(), [("first", first), ("second", second)], interval_seconds=3600
    )
    await asyncio.wait_for(scheduler.run(stop), timeout=5)
    assert ran == ["first"]


async def test_a_failing_pass_leaves_the_others_running() -> None:
    stop = asyncio.Event()
    ran: list[str] = []

    async def broken(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
        ran.append("broken")
        raise OSError("connection refused")

    async def last(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
        ran.append("last")
        stop.set()
        return 0

    scheduler = Scheduler(
        async_sessionmaker(), [("broken", broken), ("last", last)], interval_seconds=3600
    )
    await asyncio.wait_for(scheduler.run(stop), timeout=5)
    assert ran == ["broken", "last"]


async def test_a_pass_told_to_stop_reads_no_further_batch(
    committed: async_sessionmaker[AsyncSession],
) -> None:
    await seed(committed, 3)
    stop = asyncio.Event()
    stop.set()
    now = datetime.now(UTC) + timedelta(hours=2)
    assert await run_automation_pass(committed, now, config=CONFIG, stop=stop) == 0
    assert await run_automation_pass(committed, now, config=CONFIG, batch=2) == 3


def test_run_once_explains_itself_and_refuses_a_moment_without_a_zone() -> None:
    help_text = CliRunner().invoke(app, ["scheduler", "run-once", "--help"])
    assert help_text.exit_code == 0
    assert "--now" in help_text.output
    assert "TICKETRY_SCHEDULER_INTERVAL_SECONDS" in help_text.output
    naive = CliRunner().invoke(app, ["scheduler", "run-once", "--now", "2026-01-05T09:00"])
    assert naive.exit_code == 1
    assert "time zone" in naive.output


async def test_run_once_runs_every_pass_at_the_moment_given(
    committed: async_sessionmaker[AsyncSession], committed_url: str, tmp_path: Path
) -> None:
    await seed(committed, 2)
    env = cli_env(tmp_path, database_url=committed_url)
    moment = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = await asyncio.to_thread(
        run_cli, "scheduler", "run-once", "--now", moment, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("automations: 2 handled in ")
    assert [line.split(":")[0] for line in lines] == [
        "sla",
        "automations",
        "follow_ups",
        "proactive_updates",
        "retention",
        "idempotency_purge",
        "rate_limit_purge",
    ]


async def test_a_pass_that_raises_anything_leaves_the_others_and_the_loop_running() -> None:
    stop = asyncio.Event()
    ran: list[str] = []

    async def buggy(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
        ran.append("buggy")
        raise KeyError("a bug, not a lost connection")

    async def last(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
        ran.append("last")
        if ran.count("last") == 2:
            stop.set()
        return 0

    scheduler = Scheduler(
        async_sessionmaker(), [("buggy", buggy), ("last", last)], interval_seconds=0
    )
    await asyncio.wait_for(scheduler.run(stop), timeout=5)
    assert ran == ["buggy", "last", "buggy", "last"], "the next round still comes"


async def test_two_run_once_processes_at_once_handle_each_due_item_once(
    committed: async_sessionmaker[AsyncSession], committed_url: str, tmp_path: Path
) -> None:
    """SLA targets due (with an escalation step), reminders due and a scheduled rule due on
    the same tickets, with two ``run-once`` processes started together: no breach,
    escalation, reminder or rule goes twice. A ticket one process holds is skipped by the
    other (SKIP LOCKED) and left for the next pass, so a third run afterwards completes the
    work: then each went exactly once."""
    ids = await seed(committed, 12)
    start = datetime.now(UTC)
    async with committed.begin() as session:
        policy = SlaPolicy(
            name=f"Hurtig {start.timestamp()}",
            targets={"normal": {"resolution": 30}},
            escalations=[{"at_percent": 50, "actions": [{"type": "add_tags", "tags": ["sent"]}]}],
        )
        session.add(policy)
        await session.flush()
        for ticket in await session.scalars(select(Ticket).where(Ticket.id.in_(ids))):
            ticket.sla_policy_id = policy.id
            await sla.refresh(session, ticket, start)
            session.add(FollowUp(ticket_id=ticket.id, due_at=start, note="Ring op"))
    env = cli_env(tmp_path, database_url=committed_url)
    moment = (start + timedelta(hours=2)).isoformat()
    results = await asyncio.gather(
        *(
            asyncio.to_thread(
                run_cli, "scheduler", "run-once", "--now", moment, env=env, cwd=tmp_path
            )
            for _ in range(2)
        )
    )
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert all(count <= 1 for count in (await _handled(committed, ids)).values())

    after = await asyncio.to_thread(
        run_cli, "scheduler", "run-once", "--now", moment, env=env, cwd=tmp_path
    )
    assert after.returncode == 0, after.stderr
    kinds = (
        "ticket.sla_breached",
        "ticket.escalated",
        "ticket.follow_up_due",
        "fired",
        "traced",
    )
    assert await _handled(committed, ids) == {(kind, i): 1 for kind in kinds for i in ids}


async def _handled(
    committed: async_sessionmaker[AsyncSession], ids: list[int]
) -> dict[tuple[str, int], int]:
    """How often each ticket was breached, escalated, reminded, fired on and traced."""
    counts: dict[tuple[str, int], int] = {}
    async with committed() as session:
        for kind in ("ticket.sla_breached", "ticket.escalated", "ticket.follow_up_due"):
            rows = await session.execute(
                select(Event.entity_id, func.count())
                .where(Event.type == kind, Event.entity_id.in_(ids))
                .group_by(Event.entity_id)
            )
            counts.update({(kind, ticket_id): count for ticket_id, count in rows})
        fired = await session.execute(
            select(AutomationFiring.ticket_id, func.count())
            .where(AutomationFiring.ticket_id.in_(ids))
            .group_by(AutomationFiring.ticket_id)
        )
        counts.update({("fired", ticket_id): count for ticket_id, count in fired})
        traced = await session.execute(
            select(RoutingTrace.ticket_id, func.count())
            .where(RoutingTrace.ticket_id.in_(ids))
            .group_by(RoutingTrace.ticket_id)
        )
        counts.update({("traced", ticket_id): count for ticket_id, count in traced})
    return counts
