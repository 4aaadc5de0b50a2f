from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.templates import service
from app.templates.schemas import (
    RenderedRead,
    TemplateCreate,
    TemplateFilters,
    TemplateRead,
    TemplateSuggestion,
    TemplateUpdate,
    TemplateVersionRead,
)

router = APIRouter(prefix="/templates", tags=["templates"])

TicketId = Annotated[int, Query(description="The ticket to fill the template in for.")]


@router.get("", response_model=Page[TemplateRead], responses=responses(401, 403, 422))
async def list_templates(
    session: DbSession,
    principal: CurrentPrincipal,
    filters: Annotated[TemplateFilters, Query()],
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[TemplateRead]:
    """Templates by name; external partners see those serving their granted queues."""
    views, next_cursor = await service.list_templates(
        session, principal, filters, cursor=cursor, limit=limit
    )
    return Page(items=[TemplateRead.model_validate(v) for v in views], next_cursor=next_cursor)


@router.post(
    "",
    response_model=TemplateRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_template(
    session: DbSession,
    principal: CurrentPrincipal,
    body: TemplateCreate,
    request: Request,
    response: Response,
) -> TemplateRead:
    """Create a template (supervisor or admin); it is saved as version 1. 409 when the name
    is taken; 422 pointing at `subject` or `body` when a template cannot render."""
    view = await service.create_template(session, principal, body)
    return created_with_etag(request, response, TemplateRead, view)


@router.get(
    "/suggestions",
    response_model=list[TemplateSuggestion],
    responses=responses(401, 403, 404, 422),
)
async def suggest_templates(
    session: DbSession, principal: CurrentPrincipal, ticket_id: TicketId
) -> list[TemplateSuggestion]:
    """Active templates for a ticket, best first: bound to its queue, then of its category,
    then in the customer's language; templates bound to other queues are left out."""
    ranked = await service.suggestions(session, principal, ticket_id)
    return [
        TemplateSuggestion(template=TemplateRead.model_validate(view), matches=matches)
        for view, matches in ranked
    ]


@router.get("/{template_id}", response_model=TemplateRead, responses=responses(401, 403, 404, 422))
async def get_template(
    session: DbSession, principal: CurrentPrincipal, template_id: int, response: Response
) -> TemplateRead:
    view = await service.get_template(session, principal, template_id)
    return read_with_etag(response, TemplateRead, view)


@router.patch(
    "/{template_id}",
    response_model=TemplateRead,
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_template(
    session: DbSession,
    principal: CurrentPrincipal,
    template_id: int,
    body: TemplateUpdate,
    if_match: IfMatch,
    response: Response,
) -> TemplateRead:
    """Change a template (supervisor or admin); every change is kept as a new version."""
    view = await service.update_template(session, principal, template_id, body, if_match)
    return read_with_etag(response, TemplateRead, view)


@router.delete(
    "/{template_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_template(
    session: DbSession, principal: CurrentPrincipal, template_id: int, if_match: IfMatch
) -> None:
    """Delete a template and its versions (supervisor or admin); replies keep their text."""
    await service.delete_template(session, principal, template_id, if_match)


@router.get(
    "/{template_id}/versions",
    response_model=Page[TemplateVersionRead],
    responses=responses(401, 403, 404, 422),
)
async def list_versions(
    session: DbSession,
    principal: CurrentPrincipal,
    template_id: int,
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[TemplateVersionRead]:
    """Every saved state of the template, newest first."""
    rows, next_cursor = await service.list_versions(
        session, principal, template_id, cursor=cursor, limit=limit
    )
    return Page(
        items=[TemplateVersionRead.model_validate(v) for v in rows], next_cursor=next_cursor
    )


@router.post(
    "/{template_id}/render",
    response_model=RenderedRead,
    responses=responses(401, 403, 404, 422),
)
async def render_template(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    template_id: int,
    ticket_id: TicketId,
) -> RenderedRead:
    """The template filled in for a ticket you may see, as your reply. Numbers found in the
    ticket's subject are masked here (the reply mailed keeps them); for an outside partner,
    what their grant does not show of the customer, and the status link, are empty. 422
    naming the value when one is missing (e.g. a custom field the ticket lacks)."""
    rendered = await service.render_for_ticket(
        session,
        principal,
        template_id,
        ticket_id,
        public_base_url=settings.public_base_url,
        ticket_number_prefix=settings.ticket_number_prefix,
        masked=True,
    )
    return RenderedRead.model_validate(rendered)
