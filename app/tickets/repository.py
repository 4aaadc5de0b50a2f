from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from app.core.pagination import SortKey, paginate
from app.tickets.models import (
    LinkKind,
    LinkState,
    MailKind,
    Message,
    MessageDirection,
    Ticket,
    TicketLink,
    TicketStatus,
)
from app.tickets.schemas import SlaState, TicketFilters


async def get(session: AsyncSession, ticket_id: int, *, for_update: bool = False) -> Ticket | None:
    """The ticket; ``for_update`` locks its row so concurrent writers queue up, not fail."""
    # populate_existing: a locking read must refresh an object the session loaded before.
    return await session.get(
        Ticket, ticket_id, with_for_update=for_update, populate_existing=for_update
    )


async def count_for_customer(session: AsyncSession, customer_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.customer_id == customer_id)
    )
    return count or 0


async def count_open_for_customer(session: AsyncSession, customer_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(
            Ticket.customer_id == customer_id,
            Ticket.status.not_in([TicketStatus.solved, TicketStatus.closed]),
        )
    )
    return count or 0


async def release(
    session: AsyncSession, column: InstrumentedAttribute[int | None], value: int
) -> Sequence[Row[int, int, int | None]]:
    """Clear a reference (queue, team) on every ticket holding it, as a change of each ticket;
    each changed ticket's id, number and assignee."""
    changed = await session.execute(
        update(Ticket)
        .where(column == value)
        .values({column.key: None, "version": Ticket.version + 1})
        .returning(Ticket.id, Ticket.number, Ticket.assignee_id)
        .execution_options(synchronize_session="fetch")
    )
    return changed.all()


async def numbers(session: AsyncSession, ticket_ids: Collection[int]) -> dict[int, int]:
    """The ticket numbers of these tickets, by id."""
    rows = await session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ticket_ids)))
    return {ticket_id: number for ticket_id, number in rows}


def _filtered(
    filters: TicketFilters, visible_queue_ids: frozenset[int] | None, now: datetime
) -> Select[Ticket]:
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
    if filters.sla is SlaState.breached:
        # The breach pass may not have looked yet: overdue counts as breached.
        statement = statement.where(or_(Ticket.sla_breached, Ticket.sla_due_at <= now))
    elif filters.sla is SlaState.at_risk:
        statement = statement.where(
            Ticket.sla_breached.is_(False),
            Ticket.sla_due_at > now,
            Ticket.sla_at_risk_at <= now,
        )
    return statement


async def list_tickets(
    session: AsyncSession,
    filters: TicketFilters,
    visible_queue_ids: frozenset[int] | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
    *,
    now: datetime,
) -> list[Ticket]:
    statement = paginate(_filtered(filters, visible_queue_ids, now), key, cursor, limit)
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
        .options(selectinload(Message.attachments), selectinload(Message.delivery))
    )
    if public_only:
        statement = statement.where(Message.is_public.is_(True))
    if key is not None and limit is not None:
        statement = paginate(statement, key, cursor, limit)
    else:
        statement = statement.order_by(Message.created_at, Message.id)
    return list(await session.scalars(statement))


async def latest_messages(
    session: AsyncSession, ticket_ids: list[int], *, public_only: bool, per_ticket: int
) -> list[Message]:
    """The latest ``per_ticket`` messages of each ticket (one query, ranked per ticket), oldest
    first, with their attachments."""
    ranked = select(
        Message.id,
        func.row_number()
        .over(
            partition_by=Message.ticket_id, order_by=(Message.created_at.desc(), Message.id.desc())
        )
        .label("rank"),
    ).where(Message.ticket_id.in_(ticket_ids))
    if public_only:
        ranked = ranked.where(Message.is_public.is_(True))
    latest = ranked.subquery()
    statement = (
        select(Message)
        .join(latest, latest.c.id == Message.id)
        .where(latest.c.rank <= per_ticket)
        .options(selectinload(Message.attachments), selectinload(Message.delivery))
        .order_by(Message.created_at, Message.id)
    )
    return list(await session.scalars(statement))


async def get_message(
    session: AsyncSession, message_id: int, *, with_attachments: bool = False
) -> Message | None:
    if not with_attachments:
        return await session.get(Message, message_id)
    statement = (
        select(Message)
        .where(Message.id == message_id)
        .options(selectinload(Message.attachments))
        .execution_options(populate_existing=True)
    )
    return await session.scalar(statement)


async def last_inbound_mail(session: AsyncSession, ticket_id: int) -> Message | None:
    statement = (
        select(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.direction == MessageDirection.inbound,
            Message.message_id.is_not(None),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )
    return await session.scalar(statement)


async def count_tags(
    session: AsyncSession, *, prefix: str | None, limit: int
) -> Sequence[Row[tuple[str, int]]]:
    """Rows of (name, ticket_count), most used first, then by name."""
    tagged = select(Ticket.id, func.unnest(Ticket.tags).label("name")).subquery()
    # DISTINCT: a ticket counts once even if its array repeats a tag.
    ticket_count = func.count(tagged.c.id.distinct()).label("ticket_count")
    statement = (
        select(tagged.c.name, ticket_count)
        .group_by(tagged.c.name)
        .order_by(ticket_count.desc(), tagged.c.name)
        .limit(limit)
    )
    if prefix:
        statement = statement.where(tagged.c.name.istartswith(prefix, autoescape=True))
    return (await session.execute(statement)).all()


async def _update_tagged(
    session: AsyncSession, tag: str, new_tags: Any
) -> list[tuple[int, int, list[str], list[str]]]:
    """Set ``tags`` to ``new_tags`` on every ticket carrying ``tag``; each changed ticket's
    id, number and tags before and after."""
    before = await session.execute(
        select(Ticket.id, Ticket.number, Ticket.tags)
        # `@>` uses the GIN index, so only the tickets carrying the tag are visited.
        .where(Ticket.tags.contains(array([tag])))
        .order_by(Ticket.id)
        .with_for_update()
    )
    old = {ticket_id: (number, tags) for ticket_id, number, tags in before}
    if not old:
        return []
    after = await session.execute(
        update(Ticket)
        .where(Ticket.id.in_(old))
        # A bulk UPDATE bypasses the ORM's version counter: bump it (and updated_at, by its
        # onupdate default) so ETags and `updated_since` syncs see the change.
        .values(tags=new_tags, version=Ticket.version + 1)
        .returning(Ticket.id, Ticket.tags)
        .execution_options(synchronize_session="fetch")
    )
    return [
        (ticket_id, old[ticket_id][0], old[ticket_id][1], tags)
        for ticket_id, tags in sorted(after.all())
    ]


async def remove_tag(
    session: AsyncSession, tag: str
) -> list[tuple[int, int, list[str], list[str]]]:
    return await _update_tagged(session, tag, func.array_remove(Ticket.tags, tag))


async def rename_tag(
    session: AsyncSession, old: str, new: str
) -> list[tuple[int, int, list[str], list[str]]]:
    # A ticket that has the new tag already just loses the old one, so no tag appears twice;
    # otherwise the new name takes the old one's place in the list.
    new_tags = case(
        (Ticket.tags.contains(array([new])), func.array_remove(Ticket.tags, old)),
        else_=func.array_replace(Ticket.tags, old, new),
    )
    return await _update_tagged(session, old, new_tags)


async def find(
    session: AsyncSession, *, ticket_id: int | None = None, number: int | None = None
) -> Ticket | None:
    if ticket_id is not None:
        return await session.get(Ticket, ticket_id)
    return await session.scalar(select(Ticket).where(Ticket.number == number))


async def tickets_by_message_ids(
    session: AsyncSession, message_ids: Sequence[str]
) -> list[tuple[str, Ticket]]:
    if not message_ids:
        return []
    rows = await session.execute(
        select(Message.message_id, Ticket)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.message_id.in_(message_ids))
        .order_by(Message.id)
    )
    return [(header, ticket) for header, ticket in rows if header is not None]


async def links_of(session: AsyncSession, ticket_id: int) -> list[TicketLink]:
    return list(
        await session.scalars(
            select(TicketLink)
            .where((TicketLink.ticket_id == ticket_id) | (TicketLink.other_ticket_id == ticket_id))
            .order_by(TicketLink.id)
        )
    )


async def get_link(session: AsyncSession, link_id: int) -> TicketLink | None:
    return await session.get(TicketLink, link_id)


async def move_messages(session: AsyncSession, from_ticket_id: int, to_ticket_id: int) -> int:
    moved = await session.execute(
        update(Message)
        .where(Message.ticket_id == from_ticket_id)
        .values(ticket_id=to_ticket_id)
        .returning(Message.id)
        .execution_options(synchronize_session="fetch")
    )
    return len(moved.all())


async def move_customer(
    session: AsyncSession, from_customer_id: int, to_customer_id: int
) -> Sequence[Row[int, int]]:
    """Give the customer's tickets, and the messages they wrote, to another customer; each
    ticket's version moves. Returns the moved tickets' ids and numbers."""
    await session.execute(
        update(Message)
        .where(Message.author_customer_id == from_customer_id)
        .values(author_customer_id=to_customer_id)
        .execution_options(synchronize_session="fetch")
    )
    moved = await session.execute(
        update(Ticket)
        .where(Ticket.customer_id == from_customer_id)
        .values(customer_id=to_customer_id, version=Ticket.version + 1)
        .returning(Ticket.id, Ticket.number)
        .execution_options(synchronize_session="fetch")
    )
    return moved.all()


async def accept_links(session: AsyncSession, ticket_id: int, other_ticket_id: int) -> None:
    """Open suggestions between the two tickets are settled by their merge."""
    pair = {ticket_id, other_ticket_id}
    await session.execute(
        update(TicketLink)
        .where(
            TicketLink.ticket_id.in_(pair),
            TicketLink.other_ticket_id.in_(pair),
            TicketLink.kind == LinkKind.possible_thread,
            TicketLink.state == LinkState.open,
        )
        .values(state=LinkState.accepted)
    )


async def find_by_status_token(session: AsyncSession, token: str) -> Ticket | None:
    return await session.scalar(select(Ticket).where(Ticket.status_token == token))


async def conversation(
    session: AsyncSession, ticket_id: int, kinds: Collection[MailKind], limit: int
) -> list[Message]:
    statement = (
        select(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.is_public.is_(True),
            Message.kind.in_(kinds),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(reversed(list(await session.scalars(statement))))


async def first_message(session: AsyncSession, ticket_id: int) -> Message | None:
    statement = (
        select(Message)
        .where(Message.ticket_id == ticket_id)
        .order_by(Message.created_at, Message.id)
        .limit(1)
        .options(selectinload(Message.attachments))
    )
    return await session.scalar(statement)


async def created_between(
    session: AsyncSession, after: datetime, before: datetime | None, limit: int
) -> list[Ticket]:
    statement = select(Ticket).where(Ticket.created_at >= after)
    if before is not None:
        statement = statement.where(Ticket.created_at < before)
    statement = statement.order_by(Ticket.created_at, Ticket.id).limit(limit)
    return list(await session.scalars(statement))
