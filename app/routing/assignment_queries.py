"""The queries of automatic assignment: who is in a pool, how loaded they are, and the locks
that keep two routings at once from overfilling an agent or taking the same turn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent, AgentRole
from app.queues.models import queue_grants
from app.routing.models import AssignmentCursor
from app.teams.models import team_members
from app.tickets.models import Ticket, TicketStatus

LOAD_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.on_hold)
"""The statuses that count against an agent's capacity: everything still on our side.
Pending tickets wait on the customer, solved and closed ones are done."""


@dataclass(frozen=True)
class Member:
    """An active agent of a pool, as read after the pool was locked."""

    id: int
    name: str
    skills: Mapping[str, int]
    capacity: int
    available: bool
    load: int


def _in_pool(team_id: int | None, queue_id: int | None) -> ColumnElement[bool]:
    """Active agents of the team (or of every internal role without one); external agents
    only with a grant for the queue, so never for a ticket without one."""
    allowed: ColumnElement[bool] = Agent.role != AgentRole.external
    if queue_id is not None:
        granted = exists().where(
            queue_grants.c.queue_id == queue_id, queue_grants.c.agent_id == Agent.id
        )
        allowed = or_(allowed, granted)
    condition = and_(Agent.active.is_(True), allowed)
    if team_id is not None:
        member = exists().where(
            team_members.c.team_id == team_id, team_members.c.agent_id == Agent.id
        )
        condition = and_(condition, member)
    return condition


async def lock_available(
    session: AsyncSession, *, team_id: int | None, queue_id: int | None
) -> frozenset[int]:
    """Lock the available agents of the pool until the transaction ends, in ascending id
    order (the order every routing locks in, so two cannot wait on each other); returns
    their ids.

    ``FOR NO KEY UPDATE`` conflicts with itself, so a second routing over any of these agents
    waits here until this transaction ends, but not with the key-share locks of foreign keys:
    writing a message or an audit event by one of these agents does not wait.
    """
    rows = await session.scalars(
        select(Agent.id)
        .where(_in_pool(team_id, queue_id), Agent.available.is_(True))
        .order_by(Agent.id)
        .with_for_update(key_share=True)
    )
    return frozenset(rows)


async def pool_members(
    session: AsyncSession,
    *,
    team_id: int | None,
    queue_id: int | None,
    exclude_ticket_id: int | None,
) -> list[Member]:
    """The active agents of the pool by id, each with its load: tickets assigned to it in a
    status of ``LOAD_STATUSES``, not counting ``exclude_ticket_id``."""
    load = (
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.assignee_id == Agent.id, Ticket.status.in_(LOAD_STATUSES))
    )
    if exclude_ticket_id is not None:
        load = load.where(Ticket.id != exclude_ticket_id)
    rows = await session.execute(
        select(
            Agent.id,
            Agent.name,
            Agent.skills,
            Agent.capacity,
            Agent.available,
            load.scalar_subquery(),
        )
        .where(_in_pool(team_id, queue_id))
        .order_by(Agent.id)
    )
    return [Member(*row) for row in rows]


async def lock_cursor(session: AsyncSession, scope: str) -> int | None:
    """Lock the round-robin cursor of the scope until the transaction ends (creating it when
    missing) and return the agent whose turn it was last."""
    await session.execute(
        insert(AssignmentCursor)
        .values(scope=scope)
        .on_conflict_do_nothing(index_elements=["scope"])
    )
    return await session.scalar(
        select(AssignmentCursor.last_agent_id)
        .where(AssignmentCursor.scope == scope)
        .with_for_update()
    )


async def move_cursor(session: AsyncSession, scope: str, agent_id: int) -> None:
    await session.execute(
        update(AssignmentCursor)
        .where(AssignmentCursor.scope == scope)
        .values(last_agent_id=agent_id)
        .execution_options(synchronize_session=False)
    )
