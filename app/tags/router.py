from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.deps import CurrentPrincipal, DbSession
from app.api.problems import responses
from app.tags import service
from app.tags.schemas import TagRead, TagRename, TagRenamed

router = APIRouter(prefix="/tags", tags=["tags"])

# `:path` lets a tag contain "/" (e.g. "billing/refund", sent as billing%2Frefund).
_TAG_PATH = "/{name:path}"


@router.get("", response_model=list[TagRead], responses=responses(401, 403, 422))
async def list_tags(
    session: DbSession,
    principal: CurrentPrincipal,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Only tags starting with this (any case)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most tags to return.")] = 100,
) -> list[TagRead]:
    """Tags in use, most used first (agent role or higher)."""
    rows = await service.list_tags(session, principal, prefix=q, limit=limit)
    return [TagRead.model_validate(row) for row in rows]


@router.delete(
    _TAG_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def delete_tag(session: DbSession, principal: CurrentPrincipal, name: str) -> None:
    """Remove the tag from every ticket (supervisor or higher)."""
    await service.delete_tag(session, principal, name)


@router.post(
    _TAG_PATH + "/rename",
    response_model=TagRenamed,
    responses=responses(401, 403, 404, 422),
)
async def rename_tag(
    session: DbSession, principal: CurrentPrincipal, name: str, body: TagRename
) -> TagRenamed:
    """Rename the tag on every ticket (supervisor or higher)."""
    changed = await service.rename_tag(session, principal, name, body.new_name)
    return TagRenamed(old_name=name, new_name=body.new_name, tickets_changed=changed)
