from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.sla import policies
from app.sla.schemas import SlaPolicyCreate, SlaPolicyRead, SlaPolicyUpdate, TicketSlaRead

router = APIRouter(prefix="/sla-policies", tags=["sla-policies"])
ticket_sla_router = APIRouter(prefix="/tickets", tags=["tickets"])


@router.get("", response_model=Page[SlaPolicyRead], responses=responses(401, 403, 422))
async def list_sla_policies(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[SlaPolicyRead]:
    """List SLA policies by name (agent role or higher)."""
    rows, next_cursor = await policies.list_policies(session, principal, cursor=cursor, limit=limit)
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
    """Create an SLA policy (admin): targets in minutes per priority for `first_response`,
    `next_response`, `periodic_update` and `resolution`, counted 24/7 or in a calendar's
    business hours, and escalation steps (routing actions) that fire at a share of a
    target's time. Routing rules' `set_sla_policy` action, or a queue's `sla_policy_id`,
    puts tickets on it."""
    policy = await policies.create_policy(session, principal, body)
    return created_with_etag(request, response, SlaPolicyRead, policy)


@router.get("/{policy_id}", response_model=SlaPolicyRead, responses=responses(401, 403, 404, 422))
async def get_sla_policy(
    session: DbSession, principal: CurrentPrincipal, policy_id: int, response: Response
) -> SlaPolicyRead:
    """One SLA policy (agent role or higher)."""
    policy = await policies.get_policy(session, principal, policy_id)
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
    """Change an SLA policy (admin); running targets take the change at the ticket's next
    change."""
    policy = await policies.update_policy(session, principal, policy_id, body, if_match)
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
    await policies.delete_policy(session, principal, policy_id, if_match)


@ticket_sla_router.get(
    "/{ticket_id}/sla", response_model=TicketSlaRead, responses=responses(401, 403, 404, 422)
)
async def get_ticket_sla(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int
) -> TicketSlaRead:
    """The ticket's SLA history: every target cycle (running, paused, met, breached or
    cancelled) with the escalation steps fired for it (agent role or higher)."""
    return await policies.ticket_history(session, principal, ticket_id)
