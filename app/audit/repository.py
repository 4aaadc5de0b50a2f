from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.schemas import AuditFilters
from app.core.pagination import SortKey, paginate


async def list_events(
    session: AsyncSession, filters: AuditFilters, key: SortKey, cursor: str | None, limit: int
) -> list[AuditEvent]:
    statement = select(AuditEvent)
    if filters.entity_type:
        statement = statement.where(AuditEvent.entity_type == filters.entity_type)
    if filters.entity_id:
        statement = statement.where(AuditEvent.entity_id == filters.entity_id)
    if filters.actor_agent_id is not None:
        statement = statement.where(AuditEvent.actor_agent_id == filters.actor_agent_id)
    if filters.action:
        statement = statement.where(AuditEvent.action == filters.action)
    if filters.occurred_after:
        statement = statement.where(AuditEvent.occurred_at >= filters.occurred_after)
    if filters.occurred_before:
        statement = statement.where(AuditEvent.occurred_at < filters.occurred_before)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))
