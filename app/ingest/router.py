from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, PageLimit
from app.api.problems import responses
from app.core.pagination import Page
from app.ingest import service
from app.ingest.schemas import InboundMailRead

router = APIRouter(prefix="/ingest", tags=["ingest"])


@router.get("/quarantine", response_model=Page[InboundMailRead], responses=responses(401, 403, 422))
async def list_quarantine(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[InboundMailRead]:
    """Mails that could not be processed, newest first, each with the reason (supervisor)."""
    rows, next_cursor = await service.list_quarantine(session, principal, cursor, limit)
    return Page(items=[InboundMailRead.model_validate(m) for m in rows], next_cursor=next_cursor)


@router.get(
    "/inbound/{inbound_id}", response_model=InboundMailRead, responses=responses(401, 403, 404)
)
async def get_inbound(
    session: DbSession, principal: CurrentPrincipal, inbound_id: int
) -> InboundMailRead:
    """A received mail: where it came from, what became of it (supervisor)."""
    return InboundMailRead.model_validate(await service.get_inbound(session, principal, inbound_id))


@router.get(
    "/inbound/{inbound_id}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}}, **responses(401, 403, 404, 422)},
)
async def download_raw(
    session: DbSession,
    principal: CurrentPrincipal,
    inbound_id: int,
    reason: Annotated[
        str,
        Query(
            min_length=1,
            max_length=1000,
            pattern=r"\S",
            description="Why you need the original mail; kept in the audit log.",
        ),
    ],
) -> Response:
    """The mail exactly as received, as an .eml file (admin). It is the original evidence and
    so, unlike every other answer, not masked: each download is audited as
    `inbound_mail.raw_viewed` with the reason."""
    raw = await service.raw_mail(session, principal, inbound_id, reason)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="inbound-{inbound_id}.eml"'},
    )


@router.post(
    "/quarantine/{inbound_id}/retry",
    response_model=InboundMailRead,
    responses=responses(401, 403, 404, 409),
)
async def retry(
    session: DbSession, settings: AppSettings, principal: CurrentPrincipal, inbound_id: int
) -> InboundMailRead:
    """Process a quarantined mail again, e.g. after raising a limit (supervisor)."""
    config = service.IngestConfig.from_settings(settings)
    return InboundMailRead.model_validate(
        await service.retry(session, principal, inbound_id, config)
    )
