"""Follow-ups: an agent parks a ticket as pending until a time, with a note; then it comes
back. The reminder outlives a customer's message in between (that reopens the ticket at
once, as any customer message does) and still fires at its time, without changing the status
of a ticket that is no longer pending: only an agent clears a reminder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal, system_principal
from app.core.errors import Invalid, NotFound
from app.events import service as events
from app.events.schemas import TicketFollowUpDue
from app.followups import repository
from app.followups.models import FollowUp
from app.followups.schemas import FollowUpRead, FollowUpSet
from app.scheduler.items import RETRY_DELAY, describe
from app.tickets import service as tickets
from app.tickets.models import TicketStatus
from app.tickets.schemas import TicketUpdate

log = structlog.get_logger(__name__)

SCHEDULER = system_principal("follow-up scheduler")


def _snapshot(follow_up: FollowUp) -> audit.Snapshot:
    return audit.snapshot(FollowUpRead.model_validate(follow_up))


async def get_follow_up(session: AsyncSession, actor: Principal, ticket_id: int) -> FollowUp:
    """The ticket's current reminder, waiting or fired; its note is internal, for agents."""
    actor.require(AgentRole.agent)
    await tickets.get_ticket(session, actor, ticket_id)
    follow_up = await repository.current(session, ticket_id)
    if follow_up is None:
        raise NotFound(f"Ticket {ticket_id} has no follow-up.")
    return follow_up


async def current_for_tickets(
    session: AsyncSession, ticket_ids: Sequence[int]
) -> dict[int, FollowUp]:
    """The current reminders of tickets the caller has already checked the actor may see."""
    return {f.ticket_id: f for f in await repository.current_of(session, ticket_ids)}


async def set_follow_up(
    session: AsyncSession, actor: Principal, ticket_id: int, data: FollowUpSet, *, now: datetime
) -> FollowUp:
    """Park the ticket as pending until the time; a current reminder is replaced."""
    actor.require(AgentRole.agent)
    due_at = data.due(now)
    if due_at <= now:
        field = "body.due_at" if data.due_at is not None else "body.in"
        raise Invalid("A follow-up must be in the future.", field=field)
    ticket = await tickets.get_ticket(session, actor, ticket_id)
    # The reminder row before the ticket, in the order the scheduler pass locks them.
    replaced = await repository.current(session, ticket_id, for_update=True)
    before = None
    if replaced is not None:
        before = _snapshot(replaced)
        replaced.cleared_at, replaced.cleared_by = now, actor.agent_id
        await session.flush()
    follow_up = FollowUp(
        ticket_id=ticket_id,
        due_at=due_at,
        note=data.note,
        agent_id=ticket.assignee_id or actor.agent_id,
        created_by=actor.agent_id,
        created_at=now,
    )
    session.add(follow_up)
    await session.flush()
    if ticket.status is not TicketStatus.pending:
        await tickets.update_ticket(
            session, actor, ticket_id, TicketUpdate(status=TicketStatus.pending), None
        )
    await audit.record(
        session,
        actor,
        "ticket.follow_up_set",
        tickets.ENTITY,
        ticket_id,
        before=before,
        after=_snapshot(follow_up),
    )
    return follow_up


async def clear_follow_up(
    session: AsyncSession, actor: Principal, ticket_id: int, *, now: datetime
) -> None:
    """The agent is done with the reminder (fired or not); the ticket's status stays."""
    actor.require(AgentRole.agent)
    await tickets.get_ticket(session, actor, ticket_id)
    follow_up = await repository.current(session, ticket_id, for_update=True)
    if follow_up is None:
        raise NotFound(f"Ticket {ticket_id} has no follow-up.")
    before = _snapshot(follow_up)
    follow_up.cleared_at, follow_up.cleared_by = now, actor.agent_id
    await session.flush()
    await audit.record(
        session,
        actor,
        "ticket.follow_up_cleared",
        tickets.ENTITY,
        ticket_id,
        before=before,
        after=_snapshot(follow_up),
    )


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[FollowUp]:
    return await repository.claim_due(session, now, limit)


async def fire(session: AsyncSession, follow_up: FollowUp, now: datetime) -> None:
    """The reminder came due: a pending ticket opens again, and the event tells the agent
    either way. It reminds the ticket's assignee of this moment (reassigned since it was set:
    the new one), else the agent it was set for, who then gets the unassigned ticket if still
    active and allowed to take it. The reminder stays, fired, until an agent clears it."""
    ticket = await tickets.get_ticket(session, SCHEDULER, follow_up.ticket_id, for_update=True)
    reopened = ticket.status is TicketStatus.pending
    changes: dict[str, object] = {"status": TicketStatus.open} if reopened else {}
    if ticket.assignee_id is None and follow_up.agent_id is not None:
        agent = await agents.find_by_id(session, follow_up.agent_id)
        if agent is not None and agent.active:
            changes["assignee_id"] = agent.id
    if changes:
        try:
            async with session.begin_nested():
                await tickets.update_ticket(
                    session, SCHEDULER, ticket.id, TicketUpdate.model_validate(changes), None
                )
        except Invalid as exc:
            # An outside partner who lost the queue's grant: the ticket opens unassigned.
            log.info("follow_up_not_assigned", ticket_id=ticket.id, reason=exc.detail)
            if reopened:
                await tickets.update_ticket(
                    session, SCHEDULER, ticket.id, TicketUpdate(status=TicketStatus.open), None
                )
    follow_up.agent_id = ticket.assignee_id or follow_up.agent_id
    follow_up.fired_at = now
    await session.flush()
    await audit.record(
        session,
        SCHEDULER,
        "ticket.follow_up_due",
        tickets.ENTITY,
        ticket.id,
        after={
            "follow_up_id": follow_up.id,
            "due_at": follow_up.due_at.isoformat(),
            "reopened": reopened,
            "agent_id": follow_up.agent_id,
        },
    )
    await events.emit(
        session,
        TicketFollowUpDue(
            ticket_id=ticket.id,
            number=ticket.number,
            follow_up_id=follow_up.id,
            due_at=follow_up.due_at,
            note=follow_up.note,
            agent_id=follow_up.agent_id,
            reopened=reopened,
        ),
    )


async def push_back(
    session: AsyncSession, follow_up: FollowUp, error: Exception, now: datetime
) -> None:
    """Firing the reminder failed: it is tried again a little later, and the error kept."""
    await session.refresh(follow_up)
    follow_up.due_at = now + RETRY_DELAY
    await session.flush()
    await audit.record(
        session,
        SCHEDULER,
        "ticket.follow_up_failed",
        tickets.ENTITY,
        follow_up.ticket_id,
        after={
            "follow_up_id": follow_up.id,
            "error": describe(error),
            "retry_at": follow_up.due_at.isoformat(),
        },
    )
