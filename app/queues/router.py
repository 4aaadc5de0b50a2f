from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.queues import service
from app.queues.schemas import GrantSettings, QueueCreate, QueueRead, QueueUpdate

router = APIRouter(prefix="/queues", tags=["queues"])


@router.get("", response_model=Page[QueueRead], responses=responses(401, 403, 422))
async def list_queues(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[QueueRead]:
    """List queues by name; external agents see only the queues granted to them."""
    rows, next_cursor = await service.list_queues(session, principal, cursor=cursor, limit=limit)
    return Page(items=[QueueRead.model_validate(q) for q in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=QueueRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_queue(
    session: DbSession,
    principal: CurrentPrincipal,
    body: QueueCreate,
    request: Request,
    response: Response,
) -> QueueRead:
    """Create a queue (admin). 409 when the name or an inbound address is taken."""
    queue = await service.create_queue(session, principal, body)
    return created_with_etag(request, response, QueueRead, queue)


@router.get("/{queue_id}", response_model=QueueRead, responses=responses(401, 403, 404, 422))
async def get_queue(
    session: DbSession, principal: CurrentPrincipal, queue_id: int, response: Response
) -> QueueRead:
    queue = await service.get_queue(session, principal, queue_id)
    return read_with_etag(response, QueueRead, queue)


@router.patch(
    "/{queue_id}", response_model=QueueRead, responses=responses(401, 403, 404, 409, 412, 422)
)
async def update_queue(
    session: DbSession,
    principal: CurrentPrincipal,
    queue_id: int,
    body: QueueUpdate,
    if_match: IfMatch,
    response: Response,
) -> QueueRead:
    """Change a queue (admin); lists and skills given replace the stored ones."""
    queue = await service.update_queue(session, principal, queue_id, body, if_match)
    return read_with_etag(response, QueueRead, queue)


@router.delete(
    "/{queue_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_queue(
    session: DbSession, principal: CurrentPrincipal, queue_id: int, if_match: IfMatch
) -> None:
    """Delete a queue (admin); its tickets keep existing, without a queue."""
    await service.delete_queue(session, principal, queue_id, if_match)


@router.get("/{queue_id}/grants", response_model=list[int], responses=responses(401, 403, 404, 422))
async def list_grants(session: DbSession, principal: CurrentPrincipal, queue_id: int) -> list[int]:
    """Ids of the external agents who may work this queue (agent role or higher)."""
    return await service.list_grants(session, principal, queue_id)


@router.put(
    "/{queue_id}/grants/{agent_id}",
    response_model=list[int],
    responses=responses(401, 403, 404, 422),
)
async def add_grant(
    session: DbSession,
    principal: CurrentPrincipal,
    queue_id: int,
    agent_id: int,
    body: GrantSettings | None = None,
) -> list[int]:
    """Let an external agent work this queue (admin; granting again with the same settings
    changes nothing), optionally seeing customers' names or names and addresses. Returns the
    granted agent ids."""
    settings = body or GrantSettings()
    return await service.add_grant(session, principal, queue_id, agent_id, settings.customer_fields)


@router.delete(
    "/{queue_id}/grants/{agent_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def remove_grant(
    session: DbSession, principal: CurrentPrincipal, queue_id: int, agent_id: int
) -> None:
    """Withdraw an external agent's grant for this queue (admin)."""
    await service.remove_grant(session, principal, queue_id, agent_id)
