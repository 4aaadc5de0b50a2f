from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.privacy import service
from app.privacy.schemas import (
    PatternCreate,
    PatternRead,
    PatternUpdate,
    RevealRead,
    RevealRequest,
)

router = APIRouter(prefix="/privacy/patterns", tags=["privacy"])
messages_router = APIRouter(prefix="/messages", tags=["privacy"])


@router.get("", response_model=Page[PatternRead], responses=responses(401, 403, 422))
async def list_patterns(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[PatternRead]:
    """The configured patterns of sensitive values, by name (admin)."""
    rows, next_cursor = await service.list_patterns(session, principal, cursor=cursor, limit=limit)
    return Page(items=[PatternRead.model_validate(p) for p in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=PatternRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_pattern(
    session: DbSession,
    principal: CurrentPrincipal,
    body: PatternCreate,
    request: Request,
    response: Response,
) -> PatternRead:
    """Look for this regex in every message saved from now on, and mask what it finds (admin)."""
    pattern = await service.create_pattern(session, principal, body)
    return created_with_etag(request, response, PatternRead, pattern)


@router.get("/{pattern_id}", response_model=PatternRead, responses=responses(401, 403, 404, 422))
async def get_pattern(
    session: DbSession, principal: CurrentPrincipal, pattern_id: int, response: Response
) -> PatternRead:
    pattern = await service.get_pattern(session, principal, pattern_id)
    return read_with_etag(response, PatternRead, pattern)


@router.patch(
    "/{pattern_id}", response_model=PatternRead, responses=responses(401, 403, 404, 412, 422)
)
async def update_pattern(
    session: DbSession,
    principal: CurrentPrincipal,
    pattern_id: int,
    body: PatternUpdate,
    if_match: IfMatch,
    response: Response,
) -> PatternRead:
    """Change the label or regex, or turn the pattern off (admin)."""
    pattern = await service.update_pattern(session, principal, pattern_id, body, if_match)
    return read_with_etag(response, PatternRead, pattern)


@router.delete(
    "/{pattern_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_pattern(
    session: DbSession, principal: CurrentPrincipal, pattern_id: int, if_match: IfMatch
) -> None:
    """Stop looking for the pattern (admin); values it found stay masked."""
    await service.delete_pattern(session, principal, pattern_id, if_match)


@messages_router.post(
    "/{message_id}/reveal",
    response_model=RevealRead,
    responses=responses(401, 403, 404, 422),
)
async def reveal(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    message_id: int,
    body: RevealRequest,
) -> RevealRead:
    """The original values of the message's masked findings (all, or those named), for
    supervisors and admins, and agents when `TICKETRY_AGENTS_MAY_REVEAL` is on; never for
    external partners. The reason is required and kept in the audit log with who asked and
    which findings they saw."""
    return await service.reveal(
        session, principal, message_id, body, agents_may_reveal=settings.agents_may_reveal
    )
