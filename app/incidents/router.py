from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.clock import utcnow
from app.core.pagination import Page
from app.incidents import service
from app.incidents.schemas import (
    IncidentCreate,
    IncidentFilters,
    IncidentRead,
    IncidentStatusUpdateRead,
    IncidentTicketRead,
    IncidentTicketsAdd,
    IncidentTicketsAdded,
    IncidentUpdate,
    ProactiveUpdatesRead,
    ProactiveUpdatesSet,
    StatusUpdateCreate,
    StatusUpdateResult,
)
from app.outbound.service import OutboundConfig

router = APIRouter(prefix="/incidents", tags=["incidents"])
ticket_updates_router = APIRouter(prefix="/tickets", tags=["incidents"])


@router.get("", response_model=Page[IncidentRead], responses=responses(401, 403, 422))
async def list_incidents(
    session: DbSession,
    principal: CurrentPrincipal,
    filters: Annotated[IncidentFilters, Query()],
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[IncidentRead]:
    """Incidents, newest first (agent role or higher)."""
    rows, next_cursor = await service.list_incidents(
        session, principal, filters, cursor=cursor, limit=limit
    )
    return Page(items=[IncidentRead.model_validate(i) for i in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=IncidentRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 422),
)
async def create_incident(
    session: DbSession,
    principal: CurrentPrincipal,
    body: IncidentCreate,
    request: Request,
    response: Response,
) -> IncidentRead:
    """Open an incident (supervisor role or higher); with a template and an interval its open
    tickets get the template every interval until it is resolved."""
    incident = await service.create_incident(session, principal, body, now=utcnow())
    return created_with_etag(request, response, IncidentRead, incident)


@router.get("/{incident_id}", response_model=IncidentRead, responses=responses(401, 403, 404))
async def get_incident(
    session: DbSession, principal: CurrentPrincipal, incident_id: int, response: Response
) -> IncidentRead:
    """One incident (agent role or higher)."""
    incident = await service.get_incident(session, principal, incident_id)
    return read_with_etag(response, IncidentRead, incident)


@router.patch(
    "/{incident_id}", response_model=IncidentRead, responses=responses(401, 403, 404, 412, 422)
)
async def update_incident(
    session: DbSession,
    principal: CurrentPrincipal,
    incident_id: int,
    body: IncidentUpdate,
    if_match: IfMatch,
    response: Response,
) -> IncidentRead:
    """Change the title, status text or periodic updates, or resolve (`state: resolved`,
    which stops the periodic updates) (supervisor role or higher)."""
    incident = await service.update_incident(
        session, principal, incident_id, body, if_match, now=utcnow()
    )
    return read_with_etag(response, IncidentRead, incident)


@router.delete(
    "/{incident_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412),
)
async def delete_incident(
    session: DbSession, principal: CurrentPrincipal, incident_id: int, if_match: IfMatch
) -> None:
    """Delete the incident and its ticket links; the tickets stay (supervisor role or higher)."""
    await service.delete_incident(session, principal, incident_id, if_match)


@router.get(
    "/{incident_id}/tickets",
    response_model=Page[IncidentTicketRead],
    responses=responses(401, 403, 404, 422),
)
async def list_incident_tickets(
    session: DbSession,
    principal: CurrentPrincipal,
    incident_id: int,
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[IncidentTicketRead]:
    """The linked tickets, in the order they were linked (agent role or higher)."""
    rows, next_cursor = await service.list_tickets(
        session, principal, incident_id, cursor=cursor, limit=limit
    )
    return Page(items=[IncidentTicketRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/{incident_id}/tickets",
    response_model=IncidentTicketsAdded,
    responses=responses(401, 403, 404, 422),
)
async def link_tickets(
    session: DbSession, principal: CurrentPrincipal, incident_id: int, body: IncidentTicketsAdd
) -> IncidentTicketsAdded:
    """Link tickets to the incident; tickets linked already stay as they are (agent role or
    higher)."""
    linked = await service.link_tickets(session, principal, incident_id, body.ticket_ids)
    return IncidentTicketsAdded(linked=linked)


@router.delete(
    "/{incident_id}/tickets/{ticket_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
)
async def unlink_ticket(
    session: DbSession, principal: CurrentPrincipal, incident_id: int, ticket_id: int
) -> None:
    """Take a ticket off the incident (agent role or higher)."""
    await service.unlink_ticket(session, principal, incident_id, ticket_id)


@router.post(
    "/{incident_id}/updates",
    response_model=StatusUpdateResult,
    responses=responses(401, 403, 404, 422),
)
async def post_status_update(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    incident_id: int,
    body: StatusUpdateCreate,
) -> StatusUpdateResult:
    """Send a status message to every linked ticket not yet solved, as a public reply mailed
    to its customer: a text, or a template filled in for each ticket (with the incident's
    `incident.title`, `incident.status_text`, `incident.next_update_at`). Tickets it cannot
    go to are listed with the reason. The message is kept on the incident (`GET
    /incidents/{id}/updates`), and a text becomes the incident's `status_text`, so the next
    periodic update shows it. Updates are marked as automatic: they meet the tickets'
    periodic update target, not a response target (supervisor role or higher)."""
    return await service.post_status_update(
        session, principal, incident_id, body, OutboundConfig.from_settings(settings), now=utcnow()
    )


@router.get(
    "/{incident_id}/updates",
    response_model=Page[IncidentStatusUpdateRead],
    responses=responses(401, 403, 404, 422),
)
async def list_status_updates(
    session: DbSession,
    principal: CurrentPrincipal,
    incident_id: int,
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[IncidentStatusUpdateRead]:
    """The status messages posted to the incident, newest first, each with the tickets it
    reached (agent role or higher)."""
    rows, next_cursor = await service.list_status_updates(
        session, principal, incident_id, cursor=cursor, limit=limit
    )
    return Page(
        items=[IncidentStatusUpdateRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@ticket_updates_router.get(
    "/{ticket_id}/proactive-updates",
    response_model=ProactiveUpdatesRead,
    responses=responses(401, 403, 404),
)
async def get_proactive_updates(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int
) -> ProactiveUpdatesRead:
    """The ticket's schedule of proactive updates; 404 when it has none (agent role or higher)."""
    schedule = await service.get_schedule(session, principal, ticket_id)
    return ProactiveUpdatesRead.model_validate(schedule)


@ticket_updates_router.put(
    "/{ticket_id}/proactive-updates",
    response_model=ProactiveUpdatesRead,
    responses=responses(401, 403, 404, 422),
)
async def set_proactive_updates(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int, body: ProactiveUpdatesSet
) -> ProactiveUpdatesRead:
    """Mail the ticket's customer the template every `every_minutes` until the ticket is
    solved or closed; replaces the ticket's schedule (agent role or higher)."""
    schedule = await service.set_schedule(session, principal, ticket_id, body, now=utcnow())
    return ProactiveUpdatesRead.model_validate(schedule)


@ticket_updates_router.delete(
    "/{ticket_id}/proactive-updates",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
)
async def stop_proactive_updates(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int
) -> None:
    """Stop the ticket's proactive updates (agent role or higher)."""
    await service.stop_schedule(session, principal, ticket_id)
