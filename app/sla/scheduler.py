"""The breach and escalation pass: run by the workers, several processes at once.

Each batch claims the targets whose ``next_check_at`` has come, with their tickets, by
``FOR UPDATE SKIP LOCKED`` in its own transaction, so a target is in one pass's hands at a
time and a ticket being changed is left for the next pass. For each target the pass marks the
breach (``breached_at`` = the due time) and fires the policy's escalation steps whose moment
has come, each step once per target (``ticket_escalations`` is unique on target and step
key, so an edit of the policy's list neither repeats nor skips a step), then sets when to
look next. Each target is handled in a savepoint of its own: one that fails is rolled back
alone, audited as ``ticket.escalation_failed`` and looked at again a little later, so the
rest of its batch and the passes after it still go.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import service as audit
from app.auth.schemas import system_principal
from app.events import service as events
from app.events.schemas import TicketEscalated, TicketSlaBreached
from app.outbound.service import OutboundConfig
from app.routing import service as routing
from app.scheduler.items import RETRY_DELAY, describe, handle_each
from app.sla import repository
from app.sla import service as sla
from app.sla.models import SlaPolicy, SlaTarget, TicketEscalation
from app.sla.schemas import EscalationStep, policy_steps
from app.tickets import service as tickets
from app.tickets.models import Ticket

ACTOR = system_principal("sla")


async def run_sla_pass(
    maker: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    config: OutboundConfig,
    batch: int = 500,
) -> int:
    """Handle every target due at ``now``; returns how many targets were looked at."""
    handled = 0
    seen: set[int] = set()
    while True:
        async with maker.begin() as session:
            claimed = [
                t for t in await repository.claim_due(session, now, batch) if t.id not in seen
            ]
            # Read once per batch, and held here: the session's identity map keeps only
            # what is referenced, so the policies would be read again for every target.
            ticket_of = await repository.tickets_by_id(session, {t.ticket_id for t in claimed})
            policy_of = await repository.policies_by_id(
                session, {t.policy_id for t in claimed if t.policy_id is not None}
            )
            await repository.fired_step_keys(session, [t.id for t in claimed])
            seen.update(t.id for t in claimed)
            await handle_each(
                session,
                claimed,
                partial(
                    _handle_claimed,
                    session,
                    ticket_of=ticket_of,
                    policy_of=policy_of,
                    now=now,
                    config=config,
                ),
                name="sla",
                push_back=partial(_push_back, session, now=now),
            )
        handled += len(claimed)
        if len(claimed) < batch:
            return handled


async def _handle_claimed(
    session: AsyncSession,
    target: SlaTarget,
    *,
    ticket_of: dict[int, Ticket],
    policy_of: dict[int, SlaPolicy],
    now: datetime,
    config: OutboundConfig,
) -> None:
    policy = policy_of.get(target.policy_id) if target.policy_id else None
    await _handle(session, target, ticket_of[target.ticket_id], policy, now, config)


async def _handle(
    session: AsyncSession,
    target: SlaTarget,
    ticket: Ticket,
    policy: SlaPolicy | None,
    now: datetime,
    config: OutboundConfig,
) -> None:
    if policy is None:
        target.next_check_at = None
        return
    calendar = await sla.calendar_of(session, policy)
    # The policy as it is now: a target lengthened since the last count is not overdue.
    await sla.recount_target(session, calendar, target, ticket, policy)
    if target.breached_at is None and target.due_at is not None and target.due_at <= now:
        await _breach(session, ticket, policy, target)
    steps = policy_steps(policy.escalations)
    while True:
        fired = (await repository.fired_step_keys(session, [target.id]))[target.id]
        step = sla.next_step(steps, target, fired)
        if step is None or sla.moment(calendar, target, steps[step].at_percent) > now:
            break
        target.escalation_level = len(fired) + 1
        await _escalate(session, ticket, target, step, steps[step], policy, now, config)
    await sla.refresh(session, ticket, now)


async def _push_back(
    session: AsyncSession, target: SlaTarget, error: Exception, *, now: datetime
) -> None:
    """Handling the target failed (an escalation step's action raised, say): it is looked at
    again a little later, and the error kept."""
    repository.forget_fired(session)
    await session.refresh(target)
    target.next_check_at = now + RETRY_DELAY
    await session.flush()
    await audit.record(
        session,
        ACTOR,
        "ticket.escalation_failed",
        tickets.ENTITY,
        target.ticket_id,
        after={
            "metric": target.metric.value,
            "target_id": target.id,
            "error": describe(error),
            "retry_at": target.next_check_at.isoformat(),
        },
    )


async def _breach(
    session: AsyncSession, ticket: Ticket, policy: SlaPolicy, target: SlaTarget
) -> None:
    assert target.due_at is not None  # only a running target is overdue
    target.breached_at = target.due_at
    after = {"metric": target.metric.value, "due_at": target.due_at.isoformat()}
    await audit.record(
        session, ACTOR, "ticket.sla_breached", tickets.ENTITY, ticket.id, after=after
    )
    await events.emit(
        session,
        TicketSlaBreached(
            ticket_id=ticket.id,
            number=ticket.number,
            metric=target.metric,
            due_at=target.due_at,
            breached_at=target.breached_at,
            policy_id=policy.id,
        ),
    )


async def _escalate(
    session: AsyncSession,
    ticket: Ticket,
    target: SlaTarget,
    step: int,
    definition: EscalationStep,
    policy: SlaPolicy,
    now: datetime,
    config: OutboundConfig,
) -> None:
    at_percent = definition.at_percent
    fired = TicketEscalation(
        ticket_id=ticket.id,
        target_id=target.id,
        step=step,
        step_key=definition.key,
        at_percent=at_percent,
        fired_at=now,
        outcome="",
    )
    # The row first: the unique (target, step key) is the last word on "fired once".
    await repository.add_escalation(session, fired)
    applied = await routing.apply_actions(
        session,
        ticket,
        definition.actions,
        owner=f"sla-policy-{policy.id}-step-{step}",
        cause=(
            f"SLA policy {policy.name!r}, escalation step {step}: {at_percent} % of the "
            f"{target.metric.value} target"
        ),
        actor=ACTOR,
        config=config,
    )
    fired.outcome = "; ".join(str(a["outcome"]) for a in applied)
    await audit.record(
        session,
        ACTOR,
        "ticket.escalated",
        tickets.ENTITY,
        ticket.id,
        after={
            "metric": target.metric.value,
            "step": step,
            "at_percent": at_percent,
            "outcome": fired.outcome,
        },
    )
    await events.emit(
        session,
        TicketEscalated(
            ticket_id=ticket.id,
            number=ticket.number,
            metric=target.metric,
            step=step,
            at_percent=at_percent,
            actions=applied,
        ),
    )
