from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.core.pagination import SortKey, paginate
from app.teams.models import Team, team_members


async def get(session: AsyncSession, team_id: int) -> Team | None:
    return await session.get(Team, team_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(Team.id).where(Team.name == name))


async def list_teams(
    session: AsyncSession, *, key: SortKey, cursor: str | None, limit: int
) -> list[Team]:
    return list(await session.scalars(paginate(select(Team), key, cursor, limit)))


async def list_members(session: AsyncSession, team_id: int) -> list[Agent]:
    statement = (
        select(Agent)
        .join(team_members, team_members.c.agent_id == Agent.id)
        .where(team_members.c.team_id == team_id)
        .order_by(Agent.name, Agent.id)
    )
    return list(await session.scalars(statement))


async def add_member(session: AsyncSession, team_id: int, agent_id: int) -> bool:
    """Add the agent to the team; False when it was a member already."""
    added = await session.scalar(
        insert(team_members)
        .values(team_id=team_id, agent_id=agent_id)
        .on_conflict_do_nothing()
        .returning(team_members.c.agent_id)
    )
    return added is not None


async def remove_member(session: AsyncSession, team_id: int, agent_id: int) -> bool:
    """Remove the agent from the team; False when it was not a member."""
    removed = await session.scalar(
        delete(team_members)
        .where(team_members.c.team_id == team_id, team_members.c.agent_id == agent_id)
        .returning(team_members.c.agent_id)
    )
    return removed is not None
