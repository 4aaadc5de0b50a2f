from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.sla import service
from app.sla.schemas import SlaPolicyCreate, SlaPolicyRead, SlaPolicyUpdate

router = APIRouter(prefix="/sla-policies", tags=["sla-policies"])


@router.get("", response_model=Page[SlaPolicyRead], responses=responses(401, 403, 422))
async def list_sla_policies(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[SlaPolicyRead]:
    """List SLA policies by name (agent role or higher)."""
    rows, next_cursor = await service.list_policies(session, principal, cursor=cursor, limit=limit)
    return Page(items=[SlaPolicyRead.model_validate(p) for p in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=SlaPolicyRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_sla_policy(
    session: DbSession,
    principal: CurrentPrincipal,
    body: SlaPolicyCreate,
    request: Request,
    response: Response,
) -> SlaPolicyRead:
    """Create an SLA policy (admin). Routing rules' `set_sla_policy` action puts tickets on it;
    its targets (first response, resolution, ...) come in a later version."""
    policy = await service.create_policy(session, principal, body)
    return created_with_etag(request, response, SlaPolicyRead, policy)


@router.get("/{policy_id}", response_model=SlaPolicyRead, responses=responses(401, 403, 404, 422))
async def get_sla_policy(
    session: DbSession, principal: CurrentPrincipal, policy_id: int, response: Response
) -> SlaPolicyRead:
    """One SLA policy (agent role or higher)."""
    policy = await service.get_policy(session, principal, policy_id)
    return read_with_etag(response, SlaPolicyRead, policy)


@router.patch(
    "/{policy_id}",
    response_model=SlaPolicyRead,
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_sla_policy(
    session: DbSession,
    principal: CurrentPrincipal,
    policy_id: int,
    body: SlaPolicyUpdate,
    if_match: IfMatch,
    response: Response,
) -> SlaPolicyRead:
    """Rename an SLA policy or change its description (admin)."""
    policy = await service.update_policy(session, principal, policy_id, body, if_match)
    return read_with_etag(response, SlaPolicyRead, policy)


@router.delete(
    "/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_sla_policy(
    session: DbSession, principal: CurrentPrincipal, policy_id: int, if_match: IfMatch
) -> None:
    """Delete an SLA policy (admin); the tickets held to it keep existing, without a policy."""
    await service.delete_policy(session, principal, policy_id, if_match)
