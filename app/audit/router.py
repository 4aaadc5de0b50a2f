from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

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
    filters: Annotated[AuditFilters, Query()],
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[AuditEventRead]:
    """Who changed what, newest first (admin)."""
    rows, next_cursor = await service.list_events(session, principal, filters, cursor, limit)
    return Page(items=[AuditEventRead.model_validate(e) for e in rows], next_cursor=next_cursor)
