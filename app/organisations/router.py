from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag, upserted_with_etag
from app.api.problems import responses
from app.core.external_ids import ExternalIdValue, SystemName
from app.core.pagination import Page
from app.organisations import service
from app.organisations.schemas import (
    MailDomain,
    OrganisationCreate,
    OrganisationRead,
    OrganisationUpdate,
)

router = APIRouter(prefix="/organisations", tags=["organisations"])


@router.get("", response_model=Page[OrganisationRead], responses=responses(401, 403, 422))
async def list_organisations(
    session: DbSession,
    principal: CurrentPrincipal,
    limit: PageLimit,
    cursor: Cursor = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=300, description="Part of the name.")
    ] = None,
    domain: Annotated[MailDomain | None, Query(description="Has this mail domain.")] = None,
) -> Page[OrganisationRead]:
    """List organisations (agent role or higher)."""
    rows, next_cursor = await service.list_organisations(
        session, principal, q=q, domain=domain, cursor=cursor, limit=limit
    )
    return Page(items=[OrganisationRead.model_validate(o) for o in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=OrganisationRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_organisation(
    session: DbSession,
    principal: CurrentPrincipal,
    body: OrganisationCreate,
    request: Request,
    response: Response,
) -> OrganisationRead:
    """Create an organisation (supervisor or higher)."""
    organisation = await service.create_organisation(session, principal, body)
    return created_with_etag(request, response, OrganisationRead, organisation)


@router.get(
    "/lookup", response_model=OrganisationRead, responses=responses(401, 403, 404, 409, 422)
)
async def lookup_organisation(
    session: DbSession,
    principal: CurrentPrincipal,
    response: Response,
    domain: MailDomain | None = None,
    system: SystemName | None = None,
    external_id: ExternalIdValue | None = None,
) -> OrganisationRead:
    """Find the organisation by mail `domain`, or by `system` and `external_id`; 409 when
    several organisations share the domain."""
    organisation = await service.lookup_organisation(
        session, principal, domain=domain, system=system, external_id=external_id
    )
    return read_with_etag(response, OrganisationRead, organisation)


@router.get(
    "/by-external/{system}/{external_id}",
    response_model=OrganisationRead,
    responses=responses(401, 403, 404, 422),
)
async def get_organisation_by_external_id(
    session: DbSession,
    principal: CurrentPrincipal,
    system: SystemName,
    external_id: ExternalIdValue,
    response: Response,
) -> OrganisationRead:
    """The organisation with this id in another system (agent role or higher)."""
    organisation = await service.lookup_organisation(
        session, principal, domain=None, system=system, external_id=external_id
    )
    return read_with_etag(response, OrganisationRead, organisation)


@router.put(
    "/by-external/{system}/{external_id}",
    response_model=OrganisationRead,
    responses=responses(401, 403, 404, 409, 412, 422)
    | {201: {"description": "Created", "model": OrganisationRead}},
)
async def upsert_organisation_by_external_id(
    session: DbSession,
    principal: CurrentPrincipal,
    system: SystemName,
    external_id: ExternalIdValue,
    body: OrganisationCreate,
    if_match: IfMatch,
    response: Response,
) -> OrganisationRead:
    """Create the organisation with this external id (201), or update the one that has it
    (200; only the fields given change, `If-Match` is honoured) (supervisor or higher). The
    body need not repeat the path's id in `external_ids`."""
    organisation, created = await service.upsert_by_external_id(
        session, principal, system, external_id, body, if_match
    )
    return upserted_with_etag(
        response,
        OrganisationRead,
        organisation,
        created=created,
        location=f"/api/v1/organisations/{organisation.id}",
    )


@router.get(
    "/{organisation_id}", response_model=OrganisationRead, responses=responses(401, 403, 404)
)
async def get_organisation(
    session: DbSession, principal: CurrentPrincipal, organisation_id: int, response: Response
) -> OrganisationRead:
    organisation = await service.get_organisation(session, principal, organisation_id)
    return read_with_etag(response, OrganisationRead, organisation)


@router.patch(
    "/{organisation_id}",
    response_model=OrganisationRead,
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_organisation(
    session: DbSession,
    principal: CurrentPrincipal,
    organisation_id: int,
    body: OrganisationUpdate,
    if_match: IfMatch,
    response: Response,
) -> OrganisationRead:
    """Change an organisation (supervisor or higher); lists and objects given replace the
    stored ones."""
    organisation = await service.update_organisation(
        session, principal, organisation_id, body, if_match
    )
    return read_with_etag(response, OrganisationRead, organisation)


@router.delete(
    "/{organisation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412),
)
async def delete_organisation(
    session: DbSession, principal: CurrentPrincipal, organisation_id: int, if_match: IfMatch
) -> None:
    """Delete an organisation (supervisor or higher); its customers stay, without one."""
    await service.delete_organisation(session, principal, organisation_id, if_match)
