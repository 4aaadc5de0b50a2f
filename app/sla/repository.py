from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value

from app.calendars.models import Calendar
from app.core.pagination import SortKey, paginate
from app.queues.models import Queue
from app.sla.models import SlaPolicy, SlaTarget, TicketEscalation
from app.tickets.models import NO_DUE_AT, Ticket


async def get(session: AsyncSession, policy_id: int) -> SlaPolicy | None:
    return await session.get(SlaPolicy, policy_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(SlaPolicy.id).where(SlaPolicy.name == name))


async def list_policies(
    session: AsyncSession, *, key: SortKey, cursor: str | None, limit: int
) -> list[SlaPolicy]:
    return list(await session.scalars(paginate(select(SlaPolicy), key, cursor, limit)))


async def ticket_ids_held_to(session: AsyncSession, policy_id: int) -> list[int]:
    """The tickets held to the policy, by id."""
    statement = select(Ticket.id).where(Ticket.sla_policy_id == policy_id).order_by(Ticket.id)
    return list(await session.scalars(statement))


async def queue_policy_id(session: AsyncSession, queue_id: int) -> int | None:
    return await session.scalar(select(Queue.sla_policy_id).where(Queue.id == queue_id))


async def active_targets(session: AsyncSession, ticket_id: int) -> list[SlaTarget]:
    """The ticket's targets neither met nor cancelled (running or paused)."""
    statement = (
        select(SlaTarget)
        .where(
            SlaTarget.ticket_id == ticket_id,
            SlaTarget.met_at.is_(None),
            SlaTarget.cancelled_at.is_(None),
        )
        .order_by(SlaTarget.id)
    )
    return list(await session.scalars(statement))


async def active_targets_of(session: AsyncSession, ticket_ids: Collection[int]) -> list[SlaTarget]:
    statement = (
        select(SlaTarget)
        .where(
            SlaTarget.ticket_id.in_(ticket_ids),
            SlaTarget.met_at.is_(None),
            SlaTarget.cancelled_at.is_(None),
        )
        .order_by(SlaTarget.ticket_id, SlaTarget.id)
    )
    return list(await session.scalars(statement))


async def history(
    session: AsyncSession, ticket_id: int
) -> tuple[list[SlaTarget], list[TicketEscalation]]:
    targets = await session.scalars(
        select(SlaTarget).where(SlaTarget.ticket_id == ticket_id).order_by(SlaTarget.id)
    )
    steps = await session.scalars(
        select(TicketEscalation)
        .where(TicketEscalation.ticket_id == ticket_id)
        .order_by(TicketEscalation.target_id, TicketEscalation.id)
    )
    return list(targets), list(steps)


_STATE_FIELDS = ("sla_due_at", "sla_at_risk_at", "sla_breached")
_UNLOADED = object()
"""An attribute expired or never loaded: read through ``__dict__`` so as not to load it."""


async def set_ticket_state(
    session: AsyncSession,
    ticket: Ticket,
    *,
    due_at: datetime | None,
    at_risk_at: datetime | None,
    breached: bool,
) -> None:
    """Keep the ticket's copy of its SLA state. Derived data, so it is written without the
    ORM's version bump and ``updated_at`` is kept as it was (the column's onupdate would move
    it): the ETag, "hours since updated" rules and the change feed see the ticket's own
    changes only. Nothing is written when the loaded copy holds these values already."""
    kept = tuple(ticket.__dict__.get(f, _UNLOADED) for f in _STATE_FIELDS)
    if kept == (due_at, at_risk_at, breached):
        return
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id)
        .values(
            sla_due_at=due_at,
            sla_at_risk_at=at_risk_at,
            sla_breached=breached,
            updated_at=Ticket.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
    set_committed_value(ticket, "sla_due_at", due_at)
    set_committed_value(ticket, "sla_at_risk_at", at_risk_at)
    set_committed_value(ticket, "sla_breached", breached)
    set_committed_value(ticket, "sla_due_order", due_at or NO_DUE_AT)


async def claim_due(session: AsyncSession, now: datetime, batch: int) -> list[SlaTarget]:
    """Targets the pass must look at, locked with their tickets; rows another pass (or a
    change of the ticket) holds are skipped, so each is handled by one pass at a time."""
    statement = (
        select(SlaTarget)
        .join(Ticket, Ticket.id == SlaTarget.ticket_id)
        .where(SlaTarget.next_check_at <= now)
        .order_by(SlaTarget.next_check_at, SlaTarget.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(statement))


async def running_targets_of_policy(
    session: AsyncSession, policy_id: int, *, after_id: int, limit: int
) -> list[SlaTarget]:
    """The policy's running (not paused) targets with an id above ``after_id``, by id."""
    statement = (
        select(SlaTarget)
        .where(
            SlaTarget.policy_id == policy_id,
            SlaTarget.id > after_id,
            SlaTarget.met_at.is_(None),
            SlaTarget.cancelled_at.is_(None),
            SlaTarget.paused_at.is_(None),
        )
        .order_by(SlaTarget.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


_FIRED = "sla.fired_step_keys"
"""``session.info`` key: the fired step keys by target id that the session has read, kept up
to date by ``add_escalation`` (the only writer), so one batch of the pass and the ticket
changes its actions make read them once."""


@event.listens_for(Session, "after_transaction_end")
def _forget_fired(session: Session, transaction: SessionTransaction) -> None:
    # Another transaction may fire steps meanwhile: what this one read holds until its end.
    if transaction.parent is None:
        session.info.pop(_FIRED, None)


async def fired_step_keys(
    session: AsyncSession, target_ids: Collection[int]
) -> dict[int, frozenset[str]]:
    """The keys of the escalation steps fired for each target, by target id."""
    known: dict[int, set[str]] = session.info.setdefault(_FIRED, {})
    missing = [i for i in target_ids if i not in known]
    if missing:
        rows = await session.execute(
            select(TicketEscalation.target_id, TicketEscalation.step_key).where(
                TicketEscalation.target_id.in_(missing)
            )
        )
        for target_id in missing:
            known[target_id] = set()
        for target_id, key in rows:
            known[target_id].add(key)
    return {i: frozenset(known[i]) for i in target_ids}


def forget_fired(session: AsyncSession) -> None:
    """Drop the fired step keys read so far: a rolled-back savepoint may have added some."""
    session.info.pop(_FIRED, None)


async def add_escalation(session: AsyncSession, escalation: TicketEscalation) -> None:
    session.add(escalation)
    await session.flush()
    known: dict[int, set[str]] | None = session.info.get(_FIRED)
    if known is not None and escalation.target_id in known:
        known[escalation.target_id].add(escalation.step_key)


async def tickets_by_id(session: AsyncSession, ticket_ids: Collection[int]) -> dict[int, Ticket]:
    rows = await session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)))
    return {ticket.id: ticket for ticket in rows}


async def policies_by_id(
    session: AsyncSession, policy_ids: Collection[int]
) -> dict[int, SlaPolicy]:
    rows = await session.scalars(select(SlaPolicy).where(SlaPolicy.id.in_(policy_ids)))
    return {policy.id: policy for policy in rows}


async def policy_names_counting_in(session: AsyncSession, calendar_id: int) -> list[str]:
    statement = (
        select(SlaPolicy.name).where(SlaPolicy.calendar_id == calendar_id).order_by(SlaPolicy.name)
    )
    return list(await session.scalars(statement))


async def calendar_exists(session: AsyncSession, calendar_id: int) -> bool:
    return await session.get(Calendar, calendar_id) is not None
