from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.agents.schemas import AgentPublicRead
from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import read_with_etag
from app.api.problems import responses
from app.audit import service as audit
from app.core.errors import Invalid
from app.core.pagination import Page
from app.followups import service as follow_ups
from app.followups.schemas import FollowUpRead
from app.outbound.service import OutboundConfig
from app.routing import service as routing
from app.tickets import service
from app.tickets.models import Ticket
from app.tickets.schemas import (
    Included,
    MergeRequest,
    MessageCreate,
    MessageRead,
    TicketCreate,
    TicketFilters,
    TicketInclude,
    TicketLinkRead,
    TicketPage,
    TicketRead,
    TicketReadIncluded,
    TicketSort,
    TicketUpdate,
    TicketWithMessages,
)

router = APIRouter(prefix="/tickets", tags=["tickets"])
customer_history_router = APIRouter(prefix="/customers", tags=["customers"])


async def _ticket(session: DbSession, ticket: Ticket, response: Response) -> TicketRead:
    read = read_with_etag(response, TicketRead, ticket)
    read.sla = (await service.sla_targets(session, [ticket]))[ticket.id]
    return read


async def _included(
    session: DbSession, principal: CurrentPrincipal, found: service.Related
) -> Included | None:
    """The side-loaded records with only the kinds asked for; None without ``include``."""
    if not found.kinds:
        return None
    kinds: dict[str, object] = {}
    if TicketInclude.customer in found.kinds:
        kinds["customers"] = found.customers
    if TicketInclude.assignee in found.kinds:
        kinds["agents"] = {a.id: AgentPublicRead.model_validate(a) for a in found.agents}
    if TicketInclude.messages in found.kinds:
        by_ticket: dict[int, list[MessageRead]] = {}
        for read in await service.message_reads(session, principal, found.messages):
            by_ticket.setdefault(read.ticket_id, []).append(read)
        kinds["messages"] = by_ticket
    return Included.model_validate(kinds)


async def _add_follow_ups(
    session: DbSession,
    kinds: frozenset[TicketInclude],
    included: Included | None,
    tickets: Sequence[Ticket],
) -> None:
    """``include=follow_up``: the tickets' current reminders."""
    if included is None or TicketInclude.follow_up not in kinds:
        return
    current = await follow_ups.current_for_tickets(session, [t.id for t in tickets])
    included.follow_ups = {
        ticket_id: FollowUpRead.model_validate(f) for ticket_id, f in current.items()
    }


_LIST_INCLUDES = frozenset(
    {
        TicketInclude.customer,
        TicketInclude.assignee,
        TicketInclude.follow_up,
        TicketInclude.messages,
    }
)
IncludeParam = Annotated[
    str | None,
    Query(
        description="Related records to side-load into `included`, comma-separated: "
        "`customer` (each audited as `customer.viewed`; external partners get what their "
        "grant's `customer_fields` shows), `assignee`, `follow_up` (the current reminder; "
        "not for external partners) "
        f"and `messages` (the latest {service.MESSAGES_INCLUDED} of each ticket, oldest "
        "first; page through all with `/tickets/{id}/messages`; external partners: public "
        "ones).",
        examples=["customer,assignee"],
    ),
]


SortParam = Annotated[
    TicketSort | None,
    Query(description="The order of the list; `-created_at` when neither it nor `order` is given."),
]
OrderParam = Annotated[
    TicketSort | None,
    Query(description="Another name for `sort` (`order=due_at`); given both, they must agree."),
]


def _list_order(sort: TicketSort | None, order: TicketSort | None) -> TicketSort:
    if sort is not None and order is not None and sort is not order:
        raise Invalid(
            f"`sort` ({sort}) and `order` ({order}) are two names for the same choice and "
            "disagree: give one of them.",
            field="query.order",
        )
    return sort or order or TicketSort.created_at_desc


@router.get(
    "",
    response_model=TicketPage,
    response_model_exclude_unset=True,
    responses=responses(401, 403, 422),
)
async def list_tickets(
    session: DbSession,
    principal: CurrentPrincipal,
    filters: Annotated[TicketFilters, Query()],
    limit: PageLimit,
    cursor: Cursor = None,
    sort: SortParam = None,
    order: OrderParam = None,
    include: IncludeParam = None,
) -> TicketPage:
    """Tickets matching the filters; external partners see their granted queues only. With
    `include`, the related records of the whole page come along in `included`."""
    kinds = service.includes(principal, include, _LIST_INCLUDES)
    rows, next_cursor = await service.list_tickets(
        session, principal, filters, _list_order(sort, order), cursor, limit
    )
    live = await service.sla_targets(session, rows)
    page = TicketPage(
        items=[TicketRead.model_validate(t).model_copy(update={"sla": live[t.id]}) for t in rows],
        next_cursor=next_cursor,
    )
    if kinds:
        found = await service.related(session, principal, rows, kinds)
        page.included = await _included(session, principal, found)
        await _add_follow_ups(session, kinds, page.included, rows)
    return page


@router.post(
    "",
    response_model=TicketRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_ticket(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    body: TicketCreate,
    response: Response,
) -> TicketRead:
    """Open a ticket for a customer (found or created by email) with their first message.
    A ticket from a web form (`channel: web`) is acknowledged by mail when its queue says so
    (`acknowledge` on the queue)."""
    ticket = await routing.open_ticket(
        session, principal, body, OutboundConfig.from_settings(settings)
    )
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    return await _ticket(session, ticket, response)


@router.get(
    "/{ticket_id}",
    response_model=TicketReadIncluded,
    response_model_exclude_unset=True,
    responses=responses(401, 403, 404, 422),
)
async def get_ticket(
    session: DbSession,
    principal: CurrentPrincipal,
    ticket_id: int,
    response: Response,
    include: IncludeParam = None,
) -> TicketReadIncluded:
    """The ticket; with `include`, its related records come along in `included`. Each call
    is audited as `ticket.viewed` (lists are not)."""
    kinds = service.includes(principal, include, frozenset(TicketInclude))
    ticket = await service.get_ticket(session, principal, ticket_id)
    await audit.record_read(session, principal, "ticket", ticket.id)
    read = read_with_etag(response, TicketReadIncluded, ticket)
    read.sla = (await service.sla_targets(session, [ticket]))[ticket.id]
    if kinds:
        found = await service.related(session, principal, [ticket], kinds)
        read.included = await _included(session, principal, found)
        await _add_follow_ups(session, kinds, read.included, [ticket])
    return read


@router.patch(
    "/{ticket_id}", response_model=TicketRead, responses=responses(401, 403, 404, 412, 422)
)
async def update_ticket(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    ticket_id: int,
    body: TicketUpdate,
    if_match: IfMatch,
    response: Response,
) -> TicketRead:
    """Change status, priority, queue, assignee, team, category, tags or custom fields; the
    routing rules for ticket updates run after the change."""
    ticket = await routing.update_ticket(
        session, principal, ticket_id, body, if_match, OutboundConfig.from_settings(settings)
    )
    return await _ticket(session, ticket, response)


@router.get(
    "/{ticket_id}/messages",
    response_model=Page[MessageRead],
    responses=responses(401, 403, 404, 422),
)
async def list_messages(
    session: DbSession,
    principal: CurrentPrincipal,
    ticket_id: int,
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[MessageRead]:
    """The ticket's messages and notes, oldest first; each is audited as `message.viewed`."""
    rows, next_cursor = await service.list_messages(session, principal, ticket_id, cursor, limit)
    await audit.record_reads(session, principal, "message", [m.id for m in rows])
    items = await service.message_reads(session, principal, rows)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/{ticket_id}/messages",
    response_model=MessageRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 404, 409, 422),
)
async def add_message(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    ticket_id: int,
    body: MessageCreate,
) -> MessageRead:
    """Reply to the customer (`public: true`), add an internal note (`public: false`), or
    record what the customer wrote (`direction: inbound`).

    A reply is mailed from the ticket's mailbox after the request commits, with the ticket
    number in the subject and threading headers; `delivery` on the message shows how that
    goes (queued, sent, failed). Notes are never mailed. A recipient that is one of our own
    addresses, a no-reply address or a blocked customer is refused (422); a ticket with no
    mailbox to send from is a 409."""
    message = await routing.post_message(
        session, principal, ticket_id, body, OutboundConfig.from_settings(settings)
    )
    return (await service.message_reads(session, principal, [message]))[0]


@router.get(
    "/{ticket_id}/links", response_model=list[TicketLinkRead], responses=responses(401, 403, 404)
)
async def list_links(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int
) -> list[TicketLinkRead]:
    """Related tickets: suggested threads (a weak mail match), follow-ups, merges."""
    links = await service.list_links(session, principal, ticket_id)
    return [TicketLinkRead.model_validate(link) for link in links]


@router.post(
    "/{ticket_id}/links/{link_id}/dismiss",
    response_model=TicketLinkRead,
    responses=responses(401, 403, 404),
)
async def dismiss_link(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int, link_id: int
) -> TicketLinkRead:
    """Say a suggested link is wrong; it stays listed as dismissed."""
    link = await service.dismiss_link(session, principal, ticket_id, link_id)
    return TicketLinkRead.model_validate(link)


@router.post(
    "/{ticket_id}/merge",
    response_model=TicketRead,
    responses=responses(401, 403, 404, 409, 422),
)
async def merge_ticket(
    session: DbSession,
    principal: CurrentPrincipal,
    ticket_id: int,
    body: MergeRequest,
    response: Response,
) -> TicketRead:
    """Merge this ticket into another: its messages move there, it is closed and points there.
    Later replies to it thread into the other ticket."""
    target = await service.merge(session, principal, ticket_id, body.into_ticket_id)
    return await _ticket(session, target, response)


@customer_history_router.get(
    "/{customer_id}/tickets",
    response_model=Page[TicketWithMessages],
    responses=responses(401, 403, 404, 422),
)
async def customer_history(
    session: DbSession,
    principal: CurrentPrincipal,
    customer_id: int,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> Page[TicketWithMessages]:
    """The customer's whole history: their tickets, newest first, each with its messages.
    Audited as `customer.history_viewed`, and each ticket shown as `ticket.viewed`."""
    rows, next_cursor = await service.customer_history(
        session, principal, customer_id, cursor, limit
    )
    await audit.record_read(
        session, principal, "customer", customer_id, action="customer.history_viewed"
    )
    await audit.record_reads(session, principal, "ticket", [ticket.id for ticket, _ in rows])
    reads = await service.message_reads(session, principal, [m for _, ms in rows for m in ms])
    by_ticket: dict[int, list[MessageRead]] = {ticket.id: [] for ticket, _ in rows}
    for read in reads:
        by_ticket[read.ticket_id].append(read)
    items = [
        TicketWithMessages(
            **TicketRead.model_validate(ticket).model_dump(), messages=by_ticket[ticket.id]
        )
        for ticket, _ in rows
    ]
    return Page(items=items, next_cursor=next_cursor)
