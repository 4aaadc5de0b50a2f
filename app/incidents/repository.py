from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.incidents.models import (
    Incident,
    IncidentState,
    IncidentStatusUpdate,
    IncidentTicket,
    TicketUpdateSchedule,
)
from app.incidents.schemas import IncidentFilters
from app.tickets.models import Ticket, TicketStatus

_DONE = (TicketStatus.solved, TicketStatus.closed)


async def get(
    session: AsyncSession, incident_id: int, *, for_update: bool = False
) -> Incident | None:
    statement = select(Incident).where(Incident.id == incident_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def list_incidents(
    session: AsyncSession, filters: IncidentFilters, key: SortKey, cursor: str | None, limit: int
) -> list[Incident]:
    statement = select(Incident)
    if filters.state is not None:
        statement = statement.where(Incident.state == filters.state)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def link(session: AsyncSession, incident_id: int, ticket_ids: Sequence[int]) -> list[int]:
    """Link the tickets; returns those not linked before."""
    statement = (
        insert(IncidentTicket)
        .values([{"incident_id": incident_id, "ticket_id": t} for t in ticket_ids])
        .on_conflict_do_nothing(index_elements=["incident_id", "ticket_id"])
        .returning(IncidentTicket.ticket_id)
    )
    return sorted(await session.scalars(statement))


async def unlink(session: AsyncSession, incident_id: int, ticket_id: int) -> bool:
    statement = (
        delete(IncidentTicket)
        .where(IncidentTicket.incident_id == incident_id, IncidentTicket.ticket_id == ticket_id)
        .returning(IncidentTicket.id)
    )
    return (await session.scalar(statement)) is not None


async def list_links(
    session: AsyncSession, incident_id: int, key: SortKey, cursor: str | None, limit: int
) -> list[IncidentTicket]:
    statement = select(IncidentTicket).where(IncidentTicket.incident_id == incident_id)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def list_status_updates(
    session: AsyncSession, incident_id: int, key: SortKey, cursor: str | None, limit: int
) -> list[IncidentStatusUpdate]:
    statement = select(IncidentStatusUpdate).where(IncidentStatusUpdate.incident_id == incident_id)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def unsolved_ticket_ids(session: AsyncSession, incident_id: int) -> list[int]:
    """The incident's tickets not yet solved or closed, in id order (the order they are
    locked in, so two senders cannot deadlock)."""
    statement = (
        select(IncidentTicket.ticket_id)
        .join(Ticket, Ticket.id == IncidentTicket.ticket_id)
        .where(IncidentTicket.incident_id == incident_id, Ticket.status.not_in(_DONE))
        .order_by(IncidentTicket.ticket_id)
    )
    return list(await session.scalars(statement))


async def claim_due_incidents(session: AsyncSession, now: datetime, limit: int) -> list[Incident]:
    """Open incidents whose periodic update is due, locked; those another pass holds are
    skipped."""
    statement = (
        select(Incident)
        .where(
            Incident.state == IncidentState.open,
            Incident.next_update_at <= now,
            Incident.template_id.is_not(None),
            Incident.update_interval_minutes.is_not(None),
        )
        .order_by(Incident.next_update_at, Incident.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(statement))


async def schedule_of(
    session: AsyncSession, ticket_id: int, *, for_update: bool = False
) -> TicketUpdateSchedule | None:
    statement = select(TicketUpdateSchedule).where(TicketUpdateSchedule.ticket_id == ticket_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def claim_due_schedules(
    session: AsyncSession, now: datetime, limit: int
) -> list[TicketUpdateSchedule]:
    statement = (
        select(TicketUpdateSchedule)
        .where(TicketUpdateSchedule.next_update_at <= now)
        .order_by(TicketUpdateSchedule.next_update_at, TicketUpdateSchedule.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(statement))
