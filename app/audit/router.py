from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import CurrentPrincipal, Cursor, DbSession, PageLimit, get_sessionmaker
from app.api.problems import responses
from app.audit import service
from app.audit.schemas import AuditEventRead, AuditFilters, AuditVerification, ExportFormat
from app.core.clock import utcnow
from app.core.pagination import Page

router = APIRouter(prefix="/audit-events", tags=["audit"])

_MEDIA_TYPES = {ExportFormat.csv: "text/csv", ExportFormat.jsonl: "application/x-ndjson"}
_EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The events, oldest first.",
        "content": {media_type: {} for media_type in _MEDIA_TYPES.values()},
    }
}


@router.get("", response_model=Page[AuditEventRead], responses=responses(401, 403, 422))
async def list_audit_events(
    session: DbSession,
    principal: CurrentPrincipal,
    filters: Annotated[AuditFilters, Query()],
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[AuditEventRead]:
    """Who changed or read what, newest first (admin); every filter given must match."""
    rows, next_cursor = await service.list_events(session, principal, filters, cursor, limit)
    return Page(items=[AuditEventRead.model_validate(e) for e in rows], next_cursor=next_cursor)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses=_EXPORTED | responses(401, 403, 422),
)
async def export_audit_events(
    session: DbSession,
    principal: CurrentPrincipal,
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
    filters: Annotated[AuditFilters, Query()],
    fmt: Annotated[
        ExportFormat, Query(alias="format", description="`csv` (with a header) or `jsonl`.")
    ] = ExportFormat.csv,
) -> StreamingResponse:
    """The matching events as a download, UTF-8, streamed (admin; the export is itself
    audited as `audit.exported`)."""
    await service.record_export(session, principal, filters, fmt)
    return StreamingResponse(
        service.export_lines(maker, filters, fmt),
        media_type=f"{_MEDIA_TYPES[fmt]}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-events.{fmt.value}"'},
    )


@router.get("/verify", response_model=AuditVerification, responses=responses(401, 403))
async def verify_audit_chain(session: DbSession, principal: CurrentPrincipal) -> AuditVerification:
    """Seal the settled events into the hash chain, then check every link (admin): the first
    altered or deleted event is reported; `unsealed` events are not covered yet. Events whose
    personal data an erasure or retention pass redacted hold (counted as `redacted`) when the
    redaction is recorded and vouched for by the sealed event that made it."""
    return await service.verify(session, principal, utcnow())
