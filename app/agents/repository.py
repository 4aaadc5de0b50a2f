from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent, AgentRole
from app.core.pagination import SortKey, paginate


async def get(session: AsyncSession, agent_id: int) -> Agent | None:
    return await session.get(Agent, agent_id)


async def get_many(session: AsyncSession, agent_ids: Collection[int]) -> list[Agent]:
    return list(await session.scalars(select(Agent).where(Agent.id.in_(agent_ids))))


async def get_by_email(session: AsyncSession, email: str) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.email == email.lower()))


async def count_active_admins(session: AsyncSession, *, excluding: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(Agent.role == AgentRole.admin, Agent.active.is_(True), Agent.id != excluding)
    )
    return count or 0


async def list_agents(
    session: AsyncSession,
    *,
    role: AgentRole | None,
    active: bool | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[Agent]:
    statement = select(Agent)
    if role is not None:
        statement = statement.where(Agent.role == role)
    if active is not None:
        statement = statement.where(Agent.active.is_(active))
    return list(await session.scalars(paginate(statement, key, cursor, limit)))
