from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag, upserted_with_etag
from app.api.problems import responses
from app.audit import service as audit
from app.core.external_ids import ExternalIdValue, SystemName
from app.core.pagination import Page
from app.core.types import EmailAddress
from app.customers import service
from app.customers.schemas import (
    CustomerCreate,
    CustomerMergeRead,
    CustomerMergeRequest,
    CustomerNumber,
    CustomerRead,
    CustomerUpdate,
)

router = APIRouter(prefix="/customers", tags=["customers"])


@router.get("", response_model=Page[CustomerRead], responses=responses(401, 403, 422))
async def list_customers(
    session: DbSession,
    principal: CurrentPrincipal,
    limit: PageLimit,
    cursor: Cursor = None,
    email: Annotated[EmailAddress | None, Query(description="Has this address.")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=300, description="Part of the name or of an address."),
    ] = None,
    organisation_id: int | None = None,
    customer_number: CustomerNumber | None = None,
) -> Page[CustomerRead]:
    """List customers (agent role or higher). Every customer on the page is a read of
    personal data, audited as `customer.viewed` (one insert per page)."""
    rows, next_cursor = await service.list_customers(
        session,
        principal,
        email=email,
        q=q,
        organisation_id=organisation_id,
        customer_number=customer_number,
        cursor=cursor,
        limit=limit,
    )
    await audit.record_reads(session, principal, "customer", [c.id for c in rows])
    return Page(items=[CustomerRead.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=CustomerRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_customer(
    session: DbSession,
    principal: CurrentPrincipal,
    body: CustomerCreate,
    request: Request,
    response: Response,
) -> CustomerRead:
    """Create a customer (agent role or higher); without `organisation_id` it is linked to the
    organisation of its primary address's domain, when exactly one has that domain."""
    customer = await service.create_customer(session, principal, body)
    return created_with_etag(request, response, CustomerRead, customer)


@router.get("/lookup", response_model=CustomerRead, responses=responses(401, 403, 404, 422))
async def lookup_customer(
    session: DbSession,
    principal: CurrentPrincipal,
    response: Response,
    email: EmailAddress | None = None,
    system: SystemName | None = None,
    external_id: ExternalIdValue | None = None,
) -> CustomerRead:
    """Find the customer by `email`, or by `system` and `external_id` (audited as
    `customer.viewed`)."""
    customer = await service.lookup_customer(
        session, principal, email=email, system=system, external_id=external_id
    )
    await audit.record_read(session, principal, "customer", customer.id)
    return read_with_etag(response, CustomerRead, customer)


@router.get(
    "/by-external/{system}/{external_id}",
    response_model=CustomerRead,
    responses=responses(401, 403, 404, 422),
)
async def get_customer_by_external_id(
    session: DbSession,
    principal: CurrentPrincipal,
    system: SystemName,
    external_id: ExternalIdValue,
    response: Response,
) -> CustomerRead:
    """The customer with this id in another system (agent role or higher; audited as
    `customer.viewed`); by address: `GET /customers/lookup?email=`."""
    customer = await service.lookup_customer(
        session, principal, email=None, system=system, external_id=external_id
    )
    await audit.record_read(session, principal, "customer", customer.id)
    return read_with_etag(response, CustomerRead, customer)


@router.put(
    "/by-external/{system}/{external_id}",
    response_model=CustomerRead,
    responses=responses(401, 403, 404, 409, 412, 422)
    | {201: {"description": "Created", "model": CustomerRead}},
)
async def upsert_customer_by_external_id(
    session: DbSession,
    principal: CurrentPrincipal,
    system: SystemName,
    external_id: ExternalIdValue,
    body: CustomerCreate,
    if_match: IfMatch,
    response: Response,
) -> CustomerRead:
    """Create the customer with this external id (201), or update the one that has it (200;
    only the fields given change, `If-Match` is honoured) (agent role or higher). The body
    need not repeat the path's id in `external_ids`."""
    customer, created = await service.upsert_by_external_id(
        session, principal, system, external_id, body, if_match
    )
    return upserted_with_etag(
        response,
        CustomerRead,
        customer,
        created=created,
        location=f"/api/v1/customers/{customer.id}",
    )


@router.get("/{customer_id}", response_model=CustomerRead, responses=responses(401, 403, 404))
async def get_customer(
    session: DbSession, principal: CurrentPrincipal, customer_id: int, response: Response
) -> CustomerRead:
    """The customer (agent role or higher; audited as `customer.viewed`)."""
    customer = await service.get_customer(session, principal, customer_id)
    await audit.record_read(session, principal, "customer", customer.id)
    return read_with_etag(response, CustomerRead, customer)


@router.patch(
    "/{customer_id}",
    response_model=CustomerRead,
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_customer(
    session: DbSession,
    principal: CurrentPrincipal,
    customer_id: int,
    body: CustomerUpdate,
    if_match: IfMatch,
    response: Response,
) -> CustomerRead:
    """Change a customer (agent role or higher)."""
    customer = await service.update_customer(session, principal, customer_id, body, if_match)
    return read_with_etag(response, CustomerRead, customer)


@router.post(
    "/{customer_id}/merge",
    response_model=CustomerMergeRead,
    responses=responses(401, 403, 404, 409, 422),
)
async def merge_customer(
    session: DbSession, principal: CurrentPrincipal, customer_id: int, body: CustomerMergeRequest
) -> CustomerMergeRead:
    """Merge this customer into another (supervisor or higher): their tickets, the messages
    they wrote, addresses, external ids and organisation (if the other has none) move there,
    and this customer is deleted. Where both have an id in the same system the other's stays;
    this one's is dropped and listed in `dropped_external_ids`."""
    result = await service.merge_customers(session, principal, customer_id, body.into_customer_id)
    return CustomerMergeRead(
        customer=CustomerRead.model_validate(result.customer),
        tickets_moved=result.tickets_moved,
        dropped_external_ids=result.dropped_external_ids,
    )


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 409, 412),
)
async def delete_customer(
    session: DbSession, principal: CurrentPrincipal, customer_id: int, if_match: IfMatch
) -> None:
    """Delete a customer (supervisor or higher); refused (409) while they have tickets."""
    await service.delete_customer(session, principal, customer_id, if_match)
