"""The breach and escalation pass: steps fire once, breaches are marked, all of it audited
and announced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.customers.models import Customer
from app.events.models import Event
from app.outbound.service import OutboundConfig
from app.sla import scheduler
from app.sla import service as sla
from app.sla.models import SlaPolicy, TicketEscalation
from app.sla.scheduler import run_sla_pass
from app.tickets.models import Channel, Ticket, TicketPriority, TicketStatus
from tests.conftest import Caller
from tests.helpers import audit_events

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUBJECT = "Kortet virker ikke"
CUSTOMER = "Åse Øberg (samtidige kørsler)"
POLICY = "Samtidige kørsler"
STEPS = [
    {"at_percent": 80, "actions": [{"type": "add_tags", "tags": ["sla-risiko"]}]},
    {
        "at_percent": 100,
        "metrics": ["first_response"],
        "actions": [{"type": "raise_priority"}, {"type": "notify", "event": "sla.brud"}],
    },
]
TARGETS = {"normal": {"first_response": 60}, "high": {"first_response": 60}}
"""High as normal: raising the priority keeps the target's time."""


async def _ticket(
    session: AsyncSession, policy: SlaPolicy, priority: TicketPriority = TicketPriority.normal
) -> Ticket:
    customer = Customer(name=CUSTOMER)
    session.add(customer)
    await session.flush()
    ticket = Ticket(
        subject=SUBJECT,
        status=TicketStatus.open,
        priority=priority,
        channel=Channel.email,
        customer_id=customer.id,
        sla_policy_id=policy.id,
        tags=[],
        custom_fields={},
    )
    session.add(ticket)
    await session.flush()
    await sla.refresh(session, ticket, T0)
    return ticket


def _policy(name: str = "Guld") -> SlaPolicy:
    return SlaPolicy(name=name, targets=TARGETS, escalations=STEPS, at_risk_percent=80)


async def _event_types(session: AsyncSession, ticket_id: int) -> list[str]:
    rows = await session.scalars(
        select(Event.type)
        .where(
            Event.entity_id == ticket_id,
            Event.type.in_(["ticket.escalated", "ticket.sla_breached"]),
        )
        .order_by(Event.id)
    )
    return list(rows)


async def test_steps_and_breach_fire_once_each_and_are_recorded(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    session: AsyncSession,
    admin: Caller,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = _policy()
    session.add(policy)
    await session.flush()
    ticket = await _ticket(session, policy)
    ticket_id = ticket.id
    await session.commit()
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    config = OutboundConfig.from_settings(settings)

    assert await run_sla_pass(maker, T0 + timedelta(minutes=47), config=config) == 0
    assert await run_sla_pass(maker, T0 + timedelta(minutes=48), config=config) == 1
    assert await _event_types(session, ticket_id) == ["ticket.escalated"]
    monkeypatch.setattr("app.tickets.service.utcnow", lambda: T0 + timedelta(minutes=50))
    at_risk = await client.get("/api/v1/tickets", headers=admin.headers, params={"sla": "at_risk"})
    assert [t["id"] for t in at_risk.json()["items"]] == [ticket_id]

    assert await run_sla_pass(maker, T0 + timedelta(minutes=61), config=config) == 1
    assert await run_sla_pass(maker, T0 + timedelta(minutes=90), config=config) == 0
    assert await _event_types(session, ticket_id) == [
        "ticket.escalated",
        "ticket.sla_breached",
        "ticket.escalated",
    ]

    stored = await session.get(Ticket, ticket_id, populate_existing=True)
    assert stored is not None
    assert stored.tags == ["sla-risiko"]
    assert stored.priority is TicketPriority.high
    assert stored.sla_breached is True

    history = await client.get(f"/api/v1/tickets/{ticket_id}/sla", headers=admin.headers)
    [target] = history.json()["targets"]
    assert target["breached_at"] == "2026-03-02T10:00:00Z"
    assert target["met_at"] is None
    assert target["escalation_level"] == 2
    assert [(e["step"], e["at_percent"], e["fired_at"]) for e in target["escalations"]] == [
        (0, 80, "2026-03-02T09:48:00Z"),
        (1, 100, "2026-03-02T10:01:00Z"),
    ]
    assert "priority raised to high" in target["escalations"][1]["outcome"]

    monkeypatch.setattr("app.tickets.service.utcnow", lambda: T0 + timedelta(minutes=61))
    breached = await client.get(
        "/api/v1/tickets", headers=admin.headers, params={"sla": "breached"}
    )
    assert [t["id"] for t in breached.json()["items"]] == [ticket_id]
    actions = [e["action"] for e in await audit_events(client, admin, entity_type="ticket")]
    assert actions.count("ticket.escalated") == 2
    assert actions.count("ticket.sla_breached") == 1


async def test_a_target_whose_escalation_fails_is_rolled_back_alone_and_retried(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    session: AsyncSession,
    admin: Caller,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = _policy()
    session.add(policy)
    await session.flush()
    broken, *fine = [(await _ticket(session, policy)).id for _ in range(3)]
    await session.commit()
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    config = OutboundConfig.from_settings(settings)
    escalate = scheduler._escalate

    async def escalate_or_fail(session: AsyncSession, ticket: Ticket, *args: Any) -> None:
        if ticket.id == broken:
            raise RuntimeError("a bug in one escalation")
        await escalate(session, ticket, *args)

    monkeypatch.setattr(scheduler, "_escalate", escalate_or_fail)
    now = T0 + timedelta(minutes=61)
    assert await run_sla_pass(maker, now, config=config) == 3

    breached_and_escalated = ["ticket.sla_breached", "ticket.escalated", "ticket.escalated"]
    for ticket_id in fine:
        assert await _event_types(session, ticket_id) == breached_and_escalated
    assert await _event_types(session, broken) == [], "rolled back alone"
    [failed] = await audit_events(
        client,
        admin,
        entity_type="ticket",
        entity_id=str(broken),
        action="ticket.escalation_failed",
    )
    assert failed["after"]["error"] == "RuntimeError: a bug in one escalation"
    assert failed["after"]["retry_at"] == (now + timedelta(minutes=5)).isoformat()

    monkeypatch.setattr(scheduler, "_escalate", escalate)
    assert await run_sla_pass(maker, now + timedelta(minutes=1), config=config) == 0
    assert await run_sla_pass(maker, now + timedelta(minutes=5), config=config) == 1
    assert await _event_types(session, broken) == breached_and_escalated
    history = await client.get(f"/api/v1/tickets/{broken}/sla", headers=admin.headers)
    [target] = history.json()["targets"]
    assert target["breached_at"] == "2026-03-02T10:00:00Z"
    assert target["escalation_level"] == 2


async def test_list_orders_by_due_time_with_tickets_without_one_last(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    policy = _policy()
    session.add(policy)
    await session.flush()
    policy.targets = {"normal": {"first_response": 60}, "high": {"first_response": 10}}
    late = await _ticket(session, policy)
    soon = await _ticket(session, policy, TicketPriority.high)
    without = await _ticket(session, SlaPolicy(name="Tom", targets={}))
    ids = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "due_at", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/tickets", headers=admin.headers, params=params)).json()
        ids += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids[:2] == [soon.id, late.id]
    assert without.id in ids[2:]


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on real connections, so two passes at once see what the test committed; the
    tickets, their customers, the policy and the events go again afterwards (the audit log
    is append-only and keeps its rows)."""
    maker = async_sessionmaker(engine, expire_on_commit=False)
    yield maker
    async with maker.begin() as session:
        ticket_ids = list(await session.scalars(select(Ticket.id).where(Ticket.subject == SUBJECT)))
        await session.execute(delete(Event).where(Event.entity_id.in_(ticket_ids)))
        await session.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
        await session.execute(delete(Customer).where(Customer.name == CUSTOMER))
        await session.execute(delete(SlaPolicy).where(SlaPolicy.name == POLICY))


async def test_two_passes_at_once_fire_each_step_once(
    committed: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with committed.begin() as session:
        policy = _policy(POLICY)
        session.add(policy)
        await session.flush()
        ticket_ids = [(await _ticket(session, policy)).id for _ in range(6)]
    config = OutboundConfig.from_settings(settings)
    now = T0 + timedelta(hours=2)
    handled = await asyncio.gather(
        run_sla_pass(committed, now, config=config, batch=1),
        run_sla_pass(committed, now, config=config, batch=1),
    )
    assert sum(handled) == 6
    async with committed() as session:
        fired = await session.scalar(
            select(func.count())
            .select_from(TicketEscalation)
            .where(TicketEscalation.ticket_id.in_(ticket_ids))
        )
        events = await session.scalars(select(Event.type).where(Event.entity_id.in_(ticket_ids)))
        kinds = list(events)
    assert fired == 12
    assert (kinds.count("ticket.escalated"), kinds.count("ticket.sla_breached")) == (12, 6)


async def test_the_pass_leaves_the_tickets_updated_at_alone(
    connection: AsyncConnection, session: AsyncSession, settings: Settings
) -> None:
    policy = SlaPolicy(name="Uden trin", targets=TARGETS, escalations=[], at_risk_percent=80)
    session.add(policy)
    await session.flush()
    ticket = await _ticket(session, policy)
    # Set by hand: in the test's one transaction the database clock would not move anyway.
    ticket.updated_at = T0
    await session.commit()
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )

    handled = await run_sla_pass(
        maker, T0 + timedelta(minutes=61), config=OutboundConfig.from_settings(settings)
    )

    assert handled == 1
    stored = await session.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None
    assert stored.sla_breached is True
    assert stored.updated_at == T0
