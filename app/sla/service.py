"""SLA policies and the targets they set on tickets.

A ticket is held to its own policy (a routing rule's ``set_sla_policy``) or else its queue's.
Each target cycle is a row of ``ticket_sla_targets``; the ticket service calls ``refresh``
after every change of a ticket and ``on_message`` for every message, whichever path made it
(API, mail, routing, the scheduler), so the rows always follow the ticket:

- first_response starts at creation and is met by the first public reply of an agent;
- next_response starts at a customer message when no response target runs, and is met by
  the next public reply;
- periodic_update starts at each public reply while the ticket is not solved, and is met by
  the next public reply; a customer message cancels it (next_response takes over);
- resolution starts at creation, is met when the ticket is solved or closed, and a reopened
  ticket starts a new cycle;
- pending pauses the running targets (on hold does not: the customer still waits on us);
  on resuming, the time left is counted again from then, in the policy's business hours;
- a change of priority or policy recounts each running target from its start with the new
  target, pauses left out; a target the new policy does not set is cancelled;
- solved or closed cancels the targets other than resolution.

This module is imported by the ticket service, so it imports no service that imports that
one; managing policies (which checks escalation actions with the routing service) is
``policies.py``, the breach and escalation pass ``scheduler.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.calendars import service as calendars
from app.calendars.business_time import BusinessCalendar
from app.sla import repository
from app.sla.models import SlaMetric, SlaPolicy, SlaTarget
from app.sla.schemas import EscalationStep, SlaTargetLive, policy_steps, policy_targets
from app.tickets.models import (
    CONVERSATION_KINDS,
    MailKind,
    Message,
    MessageDirection,
    Ticket,
    TicketStatus,
)

_DONE = frozenset({TicketStatus.solved, TicketStatus.closed})
_PAUSED = frozenset({TicketStatus.pending})
_RESPONSES = frozenset(
    {SlaMetric.first_response, SlaMetric.next_response, SlaMetric.periodic_update}
)
_RESCHEDULE_BATCH = 1000


async def find_policy(session: AsyncSession, policy_id: int) -> SlaPolicy | None:
    """The policy, without a permission check: for other domains validating a reference
    (a routing rule's ``set_sla_policy`` action, a queue's default)."""
    return await repository.get(session, policy_id)


async def effective_policy(session: AsyncSession, ticket: Ticket) -> SlaPolicy | None:
    """The ticket's own policy, else its queue's."""
    policy_id = ticket.sla_policy_id
    if policy_id is None and ticket.queue_id is not None:
        policy_id = await repository.queue_policy_id(session, ticket.queue_id)
    return await repository.get(session, policy_id) if policy_id is not None else None


async def calendar_of(session: AsyncSession, policy: SlaPolicy) -> BusinessCalendar:
    """The business hours the policy's targets count in."""
    return await calendars.load_calendar(session, policy.calendar_id)


def _seconds(policy: SlaPolicy, ticket: Ticket, metric: SlaMetric) -> int | None:
    targets = policy_targets(policy.targets).get(ticket.priority)
    minutes = targets.minutes(metric) if targets is not None else None
    return minutes * 60 if minutes is not None else None


def moment(calendar: BusinessCalendar, target: SlaTarget, percent: float) -> datetime:
    """When the target has used ``percent`` of its time, counting from its running stretch."""
    used = target.target_seconds * percent / 100 - target.elapsed_seconds
    return calendar.add(target.resumed_at, timedelta(seconds=max(used, 0)))


def next_step(
    steps: Sequence[EscalationStep], target: SlaTarget, fired: Collection[str]
) -> int | None:
    """The index of the first step for this target's metric not fired yet (``fired``: the
    keys of its ``ticket_escalations``), if any; steps are in the order they fire."""
    return next(
        (
            i
            for i, step in enumerate(steps)
            if (step.metrics is None or target.metric in step.metrics) and step.key not in fired
        ),
        None,
    )


def next_check(
    calendar: BusinessCalendar,
    steps: Sequence[EscalationStep],
    target: SlaTarget,
    fired: Collection[str],
) -> datetime | None:
    """When the pass must look at the running target next: its breach or its next step."""
    checks = [] if target.breached_at is not None or target.due_at is None else [target.due_at]
    step = next_step(steps, target, fired)
    if step is not None:
        checks.append(moment(calendar, target, steps[step].at_percent))
    return min(checks, default=None)


def schedule(
    calendar: BusinessCalendar, policy: SlaPolicy, target: SlaTarget, fired: Collection[str]
) -> None:
    """Due time, at-risk time and the pass's next look, from the target's running stretch."""
    if target.paused_at is not None:
        target.due_at = target.at_risk_at = target.next_check_at = None
        return
    target.due_at = moment(calendar, target, 100)
    target.at_risk_at = moment(calendar, target, policy.at_risk_percent)
    target.next_check_at = next_check(calendar, policy_steps(policy.escalations), target, fired)


async def reschedule_policy(session: AsyncSession, policy: SlaPolicy) -> int:
    """After an edit of the policy's escalation steps: set when the pass looks next at each of
    its running targets, so a new earlier step fires on time and a removed one is not
    waited for. Returns how many targets were looked at."""
    calendar = await calendar_of(session, policy)
    steps = policy_steps(policy.escalations)
    after_id, count = 0, 0
    while batch := await repository.running_targets_of_policy(
        session, policy.id, after_id=after_id, limit=_RESCHEDULE_BATCH
    ):
        fired = await repository.fired_step_keys(session, [t.id for t in batch])
        for target in batch:
            target.next_check_at = next_check(calendar, steps, target, fired.get(target.id, ()))
        await session.flush()
        for target in batch:
            session.expunge(target)
        after_id, count = batch[-1].id, count + len(batch)
    return count


async def recount_policy(session: AsyncSession, policy: SlaPolicy, now: datetime) -> int:
    """After an edit of the policy's targets, business hours or at-risk share: recount each
    of its running targets from its start (due and at-risk time, the pass's next look, the
    ticket's copy), in batches, so a lengthened target is not breached on its old due time
    and a shortened one is breached on time. A target the policy no longer sets is
    cancelled. Returns how many tickets were recounted."""
    after_id, seen = 0, set[int]()
    while batch := await repository.running_targets_of_policy(
        session, policy.id, after_id=after_id, limit=_RESCHEDULE_BATCH
    ):
        after_id = batch[-1].id
        ticket_ids = {t.ticket_id for t in batch} - seen
        seen |= ticket_ids
        if not ticket_ids:
            continue
        ticket_of = await repository.tickets_by_id(session, ticket_ids)
        active: dict[int, list[SlaTarget]] = {ticket_id: [] for ticket_id in ticket_ids}
        for target in await repository.active_targets_of(session, ticket_ids):
            active[target.ticket_id].append(target)
        for ticket_id, targets in active.items():
            ticket = ticket_of[ticket_id]
            await _settle(
                session, ticket, policy, targets, now, status=ticket.status, start_missing=False
            )
        for targets in active.values():
            for target in targets:
                session.expunge(target)
    return len(seen)


async def recount_target(
    session: AsyncSession,
    calendar: BusinessCalendar,
    target: SlaTarget,
    ticket: Ticket,
    policy: SlaPolicy,
) -> None:
    """Bring one running target's due and at-risk time in line with the policy as it is now
    (its target for the ticket's priority and its business hours); a target the policy no
    longer sets is left as it is, for ``refresh`` to end. ``calendar``: the policy's."""
    seconds = _seconds(policy, ticket, target.metric)
    if seconds is None or target.paused_at is not None:
        return
    target.target_seconds, target.calendar_id = seconds, policy.calendar_id
    fired = await repository.fired_step_keys(session, [target.id])
    schedule(calendar, policy, target, fired.get(target.id, ()))


def _start(
    ticket: Ticket, policy: SlaPolicy, metric: SlaMetric, seconds: int, now: datetime
) -> SlaTarget:
    return SlaTarget(
        ticket_id=ticket.id,
        policy_id=policy.id,
        metric=metric,
        target_seconds=seconds,
        calendar_id=policy.calendar_id,
        started_at=now,
        resumed_at=now,
        elapsed_seconds=0,
        escalation_level=0,
    )


def _end(target: SlaTarget, now: datetime, *, met: bool) -> None:
    if met:
        target.met_at = now
        # Met late before the pass looked: the history still shows the breach.
        if target.breached_at is None and target.due_at is not None and target.due_at < now:
            target.breached_at = target.due_at
    else:
        target.cancelled_at = now
    target.next_check_at = None


async def refresh(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """Bring the ticket's targets in line with its status, priority and policy."""
    active = await repository.active_targets(session, ticket.id)
    policy = await effective_policy(session, ticket)
    if policy is None and not active:
        return
    await _settle(session, ticket, policy, active, now, status=ticket.status, start_missing=True)


async def _settle(
    session: AsyncSession,
    ticket: Ticket,
    policy: SlaPolicy | None,
    active: list[SlaTarget],
    now: datetime,
    *,
    status: TicketStatus,
    start_missing: bool,
) -> None:
    """End, recount, pause or resume the active targets; with ``start_missing``, start the
    first response and resolution targets the ticket lacks (not for a message: the ticket's
    own fields, such as ``first_response_at``, are set after it)."""
    done = status in _DONE
    running: list[SlaTarget] = []
    for target in active:
        seconds = _seconds(policy, ticket, target.metric) if policy is not None else None
        if done:
            # A ticket merged into another is closed unresolved: the other one goes on.
            resolved = ticket.merged_into_id is None
            _end(target, now, met=resolved and target.metric is SlaMetric.resolution)
        elif policy is None or seconds is None:
            _end(target, now, met=False)
        else:
            target.policy_id, target.target_seconds = policy.id, seconds
            target.calendar_id = policy.calendar_id
            running.append(target)
    if policy is not None and not done and start_missing:
        metrics = {target.metric for target in running}
        wanted = [SlaMetric.resolution]
        if ticket.first_response_at is None:
            wanted.append(SlaMetric.first_response)
        for metric in wanted:
            seconds = _seconds(policy, ticket, metric)
            if metric not in metrics and seconds is not None:
                running.append(_start(ticket, policy, metric, seconds, now))
    if policy is not None and not done:
        calendar = await calendar_of(session, policy)
        fired = await repository.fired_step_keys(
            session, [t.id for t in running if t.id is not None]
        )
        for target in running:
            _pause_or_resume(calendar, target, paused=status in _PAUSED, now=now)
            schedule(calendar, policy, target, fired.get(target.id, ()))
            session.add(target)
    await session.flush()
    await _keep_ticket_state(session, ticket, running)


def _pause_or_resume(
    calendar: BusinessCalendar, target: SlaTarget, *, paused: bool, now: datetime
) -> None:
    if paused and target.paused_at is None:
        used = calendar.elapsed(target.resumed_at, now)
        target.elapsed_seconds += int(used.total_seconds())
        target.paused_at = now
    elif not paused and target.paused_at is not None:
        target.paused_at = None
        target.resumed_at = now


async def _keep_ticket_state(
    session: AsyncSession, ticket: Ticket, running: list[SlaTarget]
) -> None:
    # Each its own minimum: a target due later may be at risk sooner (a shorter at-risk
    # share, a pause behind it), and sla=at_risk must find the ticket then.
    await repository.set_ticket_state(
        session,
        ticket,
        due_at=min((t.due_at for t in running if t.due_at is not None), default=None),
        at_risk_at=min((t.at_risk_at for t in running if t.at_risk_at is not None), default=None),
        breached=any(t.breached_at is not None for t in running),
    )


async def on_message(
    session: AsyncSession,
    ticket: Ticket,
    message: Message,
    now: datetime,
    *,
    automatic_update: bool = False,
) -> None:
    """A message was added: a public reply of an agent meets the response targets and starts
    a periodic update; a customer's message starts a next response. An automatic update (a
    proactive or incident status update) is exactly a periodic update: it meets the running
    one and starts the next, and no response target."""
    policy = await effective_policy(session, ticket)
    if policy is None:
        return
    active = await repository.active_targets(session, ticket.id)
    inbound = message.direction is MessageDirection.inbound
    status = ticket.status
    if inbound and message.is_public and message.kind in CONVERSATION_KINDS:
        # The ticket service opens the ticket again right after: the ball is in our court.
        if status in _DONE | _PAUSED:
            status = TicketStatus.open
        for target in active:
            if target.metric is SlaMetric.periodic_update:
                _end(target, now, met=False)
        active = [t for t in active if t.cancelled_at is None]
        running = {t.metric for t in active}
        seconds = _seconds(policy, ticket, SlaMetric.next_response)
        if seconds is not None and not running & {
            SlaMetric.first_response,
            SlaMetric.next_response,
        }:
            active.append(_start(ticket, policy, SlaMetric.next_response, seconds, now))
    elif automatic_update:
        updates = [t for t in active if t.metric is SlaMetric.periodic_update]
        if not updates:
            return
        for target in updates:
            _end(target, now, met=True)
        active = [t for t in active if t.met_at is None]
        seconds = _seconds(policy, ticket, SlaMetric.periodic_update)
        if seconds is not None and ticket.status not in _DONE:
            active.append(_start(ticket, policy, SlaMetric.periodic_update, seconds, now))
    elif not inbound and message.is_public and message.kind is MailKind.normal:
        for target in active:
            if target.metric in _RESPONSES:
                _end(target, now, met=True)
        active = [t for t in active if t.met_at is None]
        seconds = _seconds(policy, ticket, SlaMetric.periodic_update)
        if seconds is not None and ticket.status not in _DONE:
            active.append(_start(ticket, policy, SlaMetric.periodic_update, seconds, now))
    else:
        return
    for target in active:
        session.add(target)
    await _settle(session, ticket, policy, active, now, status=status, start_missing=False)


def _live(target: SlaTarget, at_risk_percent: int, now: datetime) -> SlaTargetLive:
    if target.due_at is None:
        remaining = target.target_seconds - target.elapsed_seconds
    else:
        remaining = int((target.due_at - now).total_seconds())
    overdue = target.due_at is not None and target.due_at <= now
    at_risk = target.at_risk_at is not None and target.at_risk_at <= now
    if target.due_at is None:
        at_risk = target.elapsed_seconds >= target.target_seconds * at_risk_percent / 100
    return SlaTargetLive(
        metric=target.metric,
        started_at=target.started_at,
        due_at=target.due_at,
        remaining_seconds=remaining,
        paused=target.paused_at is not None,
        at_risk=at_risk and not overdue and target.breached_at is None,
        breached=overdue or target.breached_at is not None,
        breached_at=target.breached_at or (target.due_at if overdue else None),
    )


async def live_targets(
    session: AsyncSession, tickets: Sequence[Ticket], now: datetime
) -> dict[int, list[SlaTargetLive]]:
    """The running targets of each ticket as they stand at ``now``, by ticket id."""
    found: dict[int, list[SlaTargetLive]] = {t.id: [] for t in tickets}
    if not tickets:
        return found
    percents: dict[int, int] = {}
    for target in await repository.active_targets_of(session, found.keys()):
        if target.policy_id is not None and target.policy_id not in percents:
            policy = await repository.get(session, target.policy_id)
            percents[target.policy_id] = policy.at_risk_percent if policy else 100
        percent = percents.get(target.policy_id, 100) if target.policy_id else 100
        found[target.ticket_id].append(_live(target, percent, now))
    return found
