from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.scheduler.models import AutomationFiring
from app.tickets.models import Ticket, TicketStatus


async def open_tickets_after(session: AsyncSession, after_id: int, limit: int) -> list[Ticket]:
    """The next ``limit`` tickets that are not closed, by id (a keyset batch), unlocked."""
    statement = (
        select(Ticket)
        .where(Ticket.id > after_id, Ticket.status != TicketStatus.closed)
        .order_by(Ticket.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def lock_open_tickets(session: AsyncSession, ticket_ids: Collection[int]) -> list[Ticket]:
    """Those of the tickets that are still open and that no other transaction holds, locked
    and read afresh."""
    statement = (
        select(Ticket)
        .where(Ticket.id.in_(ticket_ids), Ticket.status != TicketStatus.closed)
        .order_by(Ticket.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def firings_of(
    session: AsyncSession, ticket_ids: Collection[int]
) -> dict[tuple[int, str], datetime]:
    """(ticket id, rule id) -> the ticket's ``status_changed_at`` when the rule fired."""
    statement = select(
        AutomationFiring.ticket_id, AutomationFiring.rule_id, AutomationFiring.status_changed_at
    ).where(AutomationFiring.ticket_id.in_(ticket_ids))
    return {(row[0], row[1]): row[2] for row in await session.execute(statement)}


async def record_firings(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    statement = insert(AutomationFiring).values(list(rows))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[AutomationFiring.ticket_id, AutomationFiring.rule_id],
            set_={
                "rule_set_version": statement.excluded.rule_set_version,
                "fired_at": statement.excluded.fired_at,
                "status_changed_at": statement.excluded.status_changed_at,
            },
        )
    )


async def forget_firings(session: AsyncSession, pairs: Collection[tuple[int, str]]) -> None:
    statement = delete(AutomationFiring).where(
        tuple_(AutomationFiring.ticket_id, AutomationFiring.rule_id).in_(list(pairs))
    )
    await session.execute(statement)
