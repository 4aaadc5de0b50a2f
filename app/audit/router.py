from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from app.api.deps import CurrentPrincipal, Cursor, DbSession, PageLimit
from app.api.problems import responses
from app.audit import service
from app.audit.schemas import AuditEventRead, AuditFilters
from app.core.pagination import Page

router = APIRouter(prefix="/audit-events", tags=["audit"])


@router.get("", response_model=Page[AuditEventRead], responses=responses(401, 403, 422))
async def list_audit_events(
    session: DbSession,
    principal: CurrentPrincipal,
    limit: PageLimit,
    cursor: Cursor = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_agent_id: int | None = None,
    action: str | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
) -> Page[AuditEventRead]:
    """Who changed what, newest first (admin)."""
    filters = AuditFilters(
        entity_type=entity_type,
        entity_id=entity_id,
        actor_agent_id=actor_agent_id,
        action=action,
        occurred_after=occurred_after,
        occurred_before=occurred_before,
    )
    rows, next_cursor = await service.list_events(session, principal, filters, cursor, limit)
    return Page(items=[AuditEventRead.model_validate(e) for e in rows], next_cursor=next_cursor)
