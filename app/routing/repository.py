from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, next_cursor, paginate
from app.routing.models import RoutingTrace, RuleSetVersion

_NEWEST_FIRST = SortKey(RuleSetVersion.version, RuleSetVersion.id, descending=True)


async def current(session: AsyncSession) -> RuleSetVersion | None:
    statement = select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1)
    return await session.scalar(statement)


async def add(session: AsyncSession, version: RuleSetVersion) -> None:
    session.add(version)
    await session.flush()


async def get_version(session: AsyncSession, version: int) -> RuleSetVersion | None:
    return await session.scalar(select(RuleSetVersion).where(RuleSetVersion.version == version))


async def list_versions(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> tuple[list[RuleSetVersion], str | None]:
    statement = paginate(select(RuleSetVersion), _NEWEST_FIRST, cursor, limit)
    return next_cursor(list(await session.scalars(statement)), _NEWEST_FIRST, limit)


async def add_trace(session: AsyncSession, trace: RoutingTrace) -> None:
    session.add(trace)
    await session.flush()


async def traces_of(session: AsyncSession, ticket_id: int) -> list[RoutingTrace]:
    statement = (
        select(RoutingTrace)
        .where(RoutingTrace.ticket_id == ticket_id)
        .order_by(RoutingTrace.id.desc())
    )
    return list(await session.scalars(statement))
