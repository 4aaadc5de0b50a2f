"""Tags are not rows of their own: they live in ``tickets.tags`` (a GIN-indexed text[])."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, case, func, select, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession

from app.tickets.models import Ticket


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


async def _update_tagged(session: AsyncSession, tag: str, new_tags: Any) -> int:
    """Set ``tags`` to ``new_tags`` on every ticket carrying ``tag``; the number changed."""
    changed = await session.scalars(
        update(Ticket)
        # `@>` uses the GIN index, so only the tickets carrying the tag are visited.
        .where(Ticket.tags.contains(array([tag])))
        # Setting updated_at to itself stops its onupdate default: a tag clean-up is not an
        # edit of the ticket, so its last-change time (and, as a bulk UPDATE, its version)
        # stays as it was.
        .values(tags=new_tags, updated_at=Ticket.updated_at)
        .returning(Ticket.id)
        .execution_options(synchronize_session="fetch")
    )
    return len(changed.all())


async def remove_tag(session: AsyncSession, tag: str) -> int:
    return await _update_tagged(session, tag, func.array_remove(Ticket.tags, tag))


async def rename_tag(session: AsyncSession, old: str, new: str) -> int:
    # A ticket that has the new tag already just loses the old one, so no tag appears twice;
    # otherwise the new name takes the old one's place in the list.
    new_tags = case(
        (Ticket.tags.contains(array([new])), func.array_remove(Ticket.tags, old)),
        else_=func.array_replace(Ticket.tags, old, new),
    )
    return await _update_tagged(session, old, new_tags)
