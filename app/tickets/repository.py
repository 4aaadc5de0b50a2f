from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.pagination import SortKey, paginate
from app.tickets.models import Message, Ticket
from app.tickets.schemas import TicketFilters


async def get(session: AsyncSession, ticket_id: int) -> Ticket | None:
    return await session.get(Ticket, ticket_id)


def _filtered(filters: TicketFilters, visible_queue_ids: frozenset[int] | None) -> Select[Ticket]:
    statement = select(Ticket)
    if visible_queue_ids is not None:
        statement = statement.where(Ticket.queue_id.in_(visible_queue_ids))
    if filters.status:
        statement = statement.where(Ticket.status.in_(filters.status))
    if filters.priority:
        statement = statement.where(Ticket.priority.in_(filters.priority))
    if filters.queue_id is not None:
        statement = statement.where(Ticket.queue_id == filters.queue_id)
    if filters.assignee_id is not None:
        statement = statement.where(Ticket.assignee_id == filters.assignee_id)
    if filters.unassigned is not None:
        statement = statement.where(
            Ticket.assignee_id.is_(None) if filters.unassigned else Ticket.assignee_id.is_not(None)
        )
    if filters.customer_id is not None:
        statement = statement.where(Ticket.customer_id == filters.customer_id)
    if filters.tag:
        statement = statement.where(Ticket.tags.contains(filters.tag))
    if filters.created_after is not None:
        statement = statement.where(Ticket.created_at >= filters.created_after)
    if filters.created_before is not None:
        statement = statement.where(Ticket.created_at < filters.created_before)
    if filters.updated_since is not None:
        statement = statement.where(Ticket.updated_at >= filters.updated_since)
    if filters.updated_before is not None:
        statement = statement.where(Ticket.updated_at < filters.updated_before)
    return statement


async def list_tickets(
    session: AsyncSession,
    filters: TicketFilters,
    visible_queue_ids: frozenset[int] | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[Ticket]:
    statement = paginate(_filtered(filters, visible_queue_ids), key, cursor, limit)
    return list(await session.scalars(statement))


async def list_messages(
    session: AsyncSession,
    ticket_ids: list[int],
    *,
    public_only: bool,
    key: SortKey | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> list[Message]:
    """Messages of the tickets, oldest first, with their attachments."""
    statement = (
        select(Message)
        .where(Message.ticket_id.in_(ticket_ids))
        .options(selectinload(Message.attachments))
    )
    if public_only:
        statement = statement.where(Message.is_public.is_(True))
    if key is not None and limit is not None:
        statement = paginate(statement, key, cursor, limit)
    else:
        statement = statement.order_by(Message.created_at, Message.id)
    return list(await session.scalars(statement))


async def get_message(session: AsyncSession, message_id: int) -> Message | None:
    return await session.get(Message, message_id)
