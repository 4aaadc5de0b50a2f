"""Incidents and proactive updates: customers hear from us before they ask.

An incident ("our web bank is down") gathers the tickets of the customers it affects; one
status message reaches all its open tickets at once, and with a template and an interval the
scheduler pass sends the template to them every interval until the incident is resolved. A
single ticket can have such a schedule of its own, which stops when the ticket is solved.

Updates are public replies mailed through the outbox, audited and raising events like any
reply, but marked as automatic updates: they are no agent's reply (no first or next response
met, no "hours since agent reply" reset), only the periodic update target's. Periodic
updates keep their rhythm: the next one is planned an interval after the previous planned
time, and slots missed while no pass ran are skipped (one update after downtime, not a burst).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal, system_principal
from app.core.errors import DomainError, Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.incidents import repository
from app.incidents.models import (
    Incident,
    IncidentState,
    IncidentStatusUpdate,
    IncidentTicket,
    TicketUpdateSchedule,
)
from app.incidents.schemas import (
    IncidentCreate,
    IncidentFilters,
    IncidentRead,
    IncidentUpdate,
    ProactiveUpdatesRead,
    ProactiveUpdatesSet,
    SkippedTicket,
    StatusUpdateCreate,
    StatusUpdateResult,
)
from app.outbound import service as outbound
from app.outbound.service import OutboundConfig
from app.scheduler.items import RETRY_DELAY, describe
from app.templates import service as templates
from app.tickets import service as tickets
from app.tickets.models import TicketStatus
from app.tickets.schemas import MessageCreate

log = structlog.get_logger(__name__)

ENTITY = "incident"
SCHEDULER = system_principal("proactive updates")
_NEWEST_FIRST = SortKey(Incident.created_at, Incident.id, descending=True)
_LINKED_FIRST = SortKey(IncidentTicket.created_at, IncidentTicket.id, descending=False)
_UPDATES_NEWEST_FIRST = SortKey(
    IncidentStatusUpdate.created_at, IncidentStatusUpdate.id, descending=True
)
_DONE = frozenset({TicketStatus.solved, TicketStatus.closed})


def next_slot(planned: datetime, every: timedelta, now: datetime) -> datetime:
    """The first slot of the rhythm ``planned + k * every`` after ``now``."""
    missed = max((now - planned) // every, 0)
    return planned + (missed + 1) * every


def _snapshot(incident: Incident) -> audit.Snapshot:
    return audit.snapshot(IncidentRead.model_validate(incident))


async def _check_template(session: AsyncSession, template_id: int | None) -> None:
    if template_id is not None and await templates.find_template(session, template_id) is None:
        raise Invalid(f"Template {template_id} does not exist.", field="body.template_id")


# --- incidents -----------------------------------------------------------------------------


async def get_incident(
    session: AsyncSession, actor: Principal, incident_id: int, *, for_update: bool = False
) -> Incident:
    actor.require(AgentRole.agent)
    incident = await repository.get(session, incident_id, for_update=for_update)
    if incident is None:
        raise NotFound(f"Incident {incident_id} does not exist.")
    return incident


async def list_incidents(
    session: AsyncSession,
    actor: Principal,
    filters: IncidentFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Incident], str | None]:
    actor.require(AgentRole.agent)
    rows = await repository.list_incidents(session, filters, _NEWEST_FIRST, cursor, limit)
    return next_cursor(rows, _NEWEST_FIRST, limit)


def _plan(incident: Incident, now: datetime) -> None:
    """Periodic updates go while the incident is open with a template and an interval."""
    periodic = incident.template_id is not None and incident.update_interval_minutes is not None
    if incident.state is not IncidentState.open or not periodic:
        incident.next_update_at = None
    elif incident.next_update_at is None:
        assert incident.update_interval_minutes is not None
        incident.next_update_at = now + timedelta(minutes=incident.update_interval_minutes)


async def create_incident(
    session: AsyncSession, actor: Principal, data: IncidentCreate, *, now: datetime
) -> Incident:
    actor.require(AgentRole.supervisor)
    await _check_template(session, data.template_id)
    incident = Incident(
        title=data.title,
        status_text=data.status_text,
        state=IncidentState.open,
        template_id=data.template_id,
        update_interval_minutes=data.update_interval_minutes,
        next_update_at=data.next_update_at,
        created_by=actor.agent_id,
    )
    _plan(incident, now)
    session.add(incident)
    await session.flush()
    await audit.record(
        session, actor, "incident.created", ENTITY, incident.id, after=_snapshot(incident)
    )
    return incident


async def update_incident(
    session: AsyncSession,
    actor: Principal,
    incident_id: int,
    changes: IncidentUpdate,
    expected_version: int | None,
    *,
    now: datetime,
) -> Incident:
    """Apply the changes; resolving stops the periodic updates, reopening plans them again."""
    actor.require(AgentRole.supervisor)
    incident = await get_incident(session, actor, incident_id, for_update=True)
    check_version(incident.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    await _check_template(session, values.get("template_id"))
    before = _snapshot(incident)
    for field, value in values.items():
        setattr(incident, field, value)
    if incident.update_interval_minutes is not None and incident.template_id is None:
        raise Invalid(
            "Periodic updates need a template to send.", field="body.update_interval_minutes"
        )
    if "state" in values and values["state"] != before["state"]:
        incident.resolved_at = now if incident.state is IncidentState.resolved else None
    _plan(incident, now)
    await session.flush()
    await audit.record(
        session,
        actor,
        "incident.updated",
        ENTITY,
        incident.id,
        before=before,
        after=_snapshot(incident),
    )
    return incident


async def delete_incident(
    session: AsyncSession, actor: Principal, incident_id: int, expected_version: int | None
) -> None:
    """Delete the incident and its links; the tickets and what was sent to them stay."""
    actor.require(AgentRole.supervisor)
    incident = await get_incident(session, actor, incident_id, for_update=True)
    check_version(incident.version, expected_version)
    before = _snapshot(incident)
    await session.delete(incident)
    await session.flush()
    await audit.record(session, actor, "incident.deleted", ENTITY, incident_id, before=before)


async def link_tickets(
    session: AsyncSession, actor: Principal, incident_id: int, ticket_ids: list[int]
) -> list[int]:
    """Link tickets the actor may see; returns those not linked before."""
    actor.require(AgentRole.agent)
    incident = await get_incident(session, actor, incident_id)
    wanted = sorted(set(ticket_ids))
    for ticket_id in wanted:
        try:
            await tickets.get_ticket(session, actor, ticket_id)
        except NotFound as exc:
            raise Invalid(exc.detail, field="body.ticket_ids") from None
    linked = await repository.link(session, incident.id, wanted)
    if linked:
        await audit.record(
            session,
            actor,
            "incident.tickets_linked",
            ENTITY,
            incident.id,
            after={"ticket_ids": linked},
        )
    return linked


async def unlink_ticket(
    session: AsyncSession, actor: Principal, incident_id: int, ticket_id: int
) -> None:
    actor.require(AgentRole.agent)
    incident = await get_incident(session, actor, incident_id)
    if not await repository.unlink(session, incident.id, ticket_id):
        raise NotFound(f"Ticket {ticket_id} is not linked to incident {incident_id}.")
    await audit.record(
        session,
        actor,
        "incident.ticket_unlinked",
        ENTITY,
        incident.id,
        before={"ticket_id": ticket_id},
    )


async def list_tickets(
    session: AsyncSession, actor: Principal, incident_id: int, *, cursor: str | None, limit: int
) -> tuple[list[IncidentTicket], str | None]:
    incident = await get_incident(session, actor, incident_id)
    rows = await repository.list_links(session, incident.id, _LINKED_FIRST, cursor, limit)
    return next_cursor(rows, _LINKED_FIRST, limit)


# --- sending updates -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Update:
    """What to send: a text, or a template filled in per ticket (with the incident's values)."""

    body_text: str | None = None
    body_html: str | None = None
    template_id: int | None = None
    incident: dict[str, Any] | None = None


def _incident_values(incident: Incident) -> dict[str, Any]:
    return {
        "title": incident.title,
        "status_text": incident.status_text,
        "next_update_at": incident.next_update_at,
    }


async def _send(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    update: _Update,
    config: OutboundConfig,
) -> str | None:
    """Post the update as a public reply on the ticket, mailed to its customer; returns why
    not when it cannot go (nothing of it is kept then)."""
    try:
        async with session.begin_nested():
            body_text, body_html = update.body_text, update.body_html
            if update.template_id is not None:
                rendered = await templates.render_for_ticket(
                    session,
                    actor,
                    update.template_id,
                    ticket_id,
                    public_base_url=config.public_base_url,
                    ticket_number_prefix=config.ticket_number_prefix,
                    incident=update.incident,
                )
                body_text, body_html = rendered.body_text, rendered.body_html
            assert body_text is not None
            message = await outbound.post_message(
                session,
                actor,
                ticket_id,
                MessageCreate(body_text=body_text, body_html=body_html),
                config,
                automatic_update=True,
            )
            # Rendered here (with the incident's values), so the message names its template
            # itself rather than through MessageCreate, which would render it again.
            message.template_id = update.template_id
            await session.flush()
    except DomainError as exc:
        log.warning("proactive_update_not_sent", ticket_id=ticket_id, reason=exc.detail)
        return exc.detail
    return None


async def _send_to_incident(
    session: AsyncSession,
    actor: Principal,
    incident: Incident,
    update: _Update,
    config: OutboundConfig,
    action: str,
) -> StatusUpdateResult:
    sent: list[int] = []
    skipped: list[SkippedTicket] = []
    for ticket_id in await repository.unsolved_ticket_ids(session, incident.id):
        reason = await _send(session, actor, ticket_id, update, config)
        if reason is None:
            sent.append(ticket_id)
        else:
            skipped.append(SkippedTicket(ticket_id=ticket_id, reason=reason))
    result = StatusUpdateResult(sent=len(sent), ticket_ids=sent, skipped=skipped)
    await audit.record(
        session, actor, action, ENTITY, incident.id, after=result.model_dump(mode="json")
    )
    return result


async def post_status_update(
    session: AsyncSession,
    actor: Principal,
    incident_id: int,
    data: StatusUpdateCreate,
    config: OutboundConfig,
    *,
    now: datetime,
) -> StatusUpdateResult:
    """One status message to every linked ticket not yet solved, in one go. It is kept on
    the incident, and its text becomes the incident's status text, which the next periodic
    update shows."""
    actor.require(AgentRole.supervisor)
    incident = await get_incident(session, actor, incident_id, for_update=True)
    await _check_template(session, data.template_id)
    if data.body_text is not None:
        incident.status_text = data.body_text
        await session.flush()
    update = _Update(
        body_text=data.body_text,
        body_html=data.body_html,
        template_id=data.template_id,
        incident=_incident_values(incident),
    )
    result = await _send_to_incident(
        session, actor, incident, update, config, "incident.update_sent"
    )
    session.add(
        IncidentStatusUpdate(
            incident_id=incident.id,
            body_text=data.body_text,
            template_id=data.template_id,
            author_id=actor.agent_id,
            created_at=now,
            ticket_ids=result.ticket_ids,
        )
    )
    await session.flush()
    return result


async def list_status_updates(
    session: AsyncSession, actor: Principal, incident_id: int, *, cursor: str | None, limit: int
) -> tuple[list[IncidentStatusUpdate], str | None]:
    """The status messages posted to the incident, newest first."""
    incident = await get_incident(session, actor, incident_id)
    rows = await repository.list_status_updates(
        session, incident.id, _UPDATES_NEWEST_FIRST, cursor, limit
    )
    return next_cursor(rows, _UPDATES_NEWEST_FIRST, limit)


async def claim_due_incidents(session: AsyncSession, now: datetime, limit: int) -> list[Incident]:
    return await repository.claim_due_incidents(session, now, limit)


async def send_periodic_update(
    session: AsyncSession, incident: Incident, now: datetime, config: OutboundConfig
) -> None:
    """The incident's periodic update is due: plan the next one, then send the template (which
    can tell the customers when that next one comes)."""
    assert incident.next_update_at is not None
    assert incident.update_interval_minutes is not None
    every = timedelta(minutes=incident.update_interval_minutes)
    incident.next_update_at = next_slot(incident.next_update_at, every, now)
    await session.flush()
    update = _Update(template_id=incident.template_id, incident=_incident_values(incident))
    await _send_to_incident(
        session, SCHEDULER, incident, update, config, "incident.periodic_update_sent"
    )


async def push_back_incident(
    session: AsyncSession, incident: Incident, error: Exception, now: datetime
) -> None:
    """The periodic update failed: tried again a little later, the error kept."""
    await session.refresh(incident)
    incident.next_update_at = now + RETRY_DELAY
    await session.flush()
    await audit.record(
        session,
        SCHEDULER,
        "incident.periodic_update_failed",
        ENTITY,
        incident.id,
        after={"error": describe(error), "retry_at": incident.next_update_at.isoformat()},
    )


# --- one ticket's proactive updates --------------------------------------------------------


def _schedule_snapshot(schedule: TicketUpdateSchedule) -> audit.Snapshot:
    return audit.snapshot(ProactiveUpdatesRead.model_validate(schedule))


async def get_schedule(
    session: AsyncSession, actor: Principal, ticket_id: int
) -> TicketUpdateSchedule:
    actor.require(AgentRole.agent)
    await tickets.get_ticket(session, actor, ticket_id)
    schedule = await repository.schedule_of(session, ticket_id)
    if schedule is None:
        raise NotFound(f"Ticket {ticket_id} has no proactive updates.")
    return schedule


async def set_schedule(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    data: ProactiveUpdatesSet,
    *,
    now: datetime,
) -> TicketUpdateSchedule:
    """Send the ticket's customer the template every interval until the ticket is solved."""
    actor.require(AgentRole.agent)
    ticket = await tickets.get_ticket(session, actor, ticket_id)
    if ticket.status in _DONE:
        raise Invalid(f"Ticket {ticket.number} is {ticket.status.value}: it needs no updates.")
    await templates.get_template(session, actor, data.template_id)
    schedule = await repository.schedule_of(session, ticket_id, for_update=True)
    before = _schedule_snapshot(schedule) if schedule is not None else None
    if schedule is None:
        schedule = TicketUpdateSchedule(
            ticket_id=ticket_id, created_by=actor.agent_id, created_at=now
        )
        session.add(schedule)
    schedule.template_id = data.template_id
    schedule.every_minutes = data.every_minutes
    schedule.next_update_at = data.next_update_at or now + timedelta(minutes=data.every_minutes)
    await session.flush()
    await audit.record(
        session,
        actor,
        "ticket.proactive_updates_set",
        tickets.ENTITY,
        ticket_id,
        before=before,
        after=_schedule_snapshot(schedule),
    )
    return schedule


async def _stop(session: AsyncSession, actor: Principal, schedule: TicketUpdateSchedule) -> None:
    before = _schedule_snapshot(schedule)
    await session.delete(schedule)
    await session.flush()
    await audit.record(
        session,
        actor,
        "ticket.proactive_updates_stopped",
        tickets.ENTITY,
        schedule.ticket_id,
        before=before,
    )


async def stop_schedule(session: AsyncSession, actor: Principal, ticket_id: int) -> None:
    actor.require(AgentRole.agent)
    await tickets.get_ticket(session, actor, ticket_id)
    schedule = await repository.schedule_of(session, ticket_id, for_update=True)
    if schedule is None:
        raise NotFound(f"Ticket {ticket_id} has no proactive updates.")
    await _stop(session, actor, schedule)


async def claim_due_schedules(
    session: AsyncSession, now: datetime, limit: int
) -> list[TicketUpdateSchedule]:
    return await repository.claim_due_schedules(session, now, limit)


async def send_scheduled_update(
    session: AsyncSession, schedule: TicketUpdateSchedule, now: datetime, config: OutboundConfig
) -> None:
    """The ticket's update is due: sent, and the next one planned; a solved or closed ticket
    ends its schedule instead."""
    ticket = await tickets.get_ticket(session, SCHEDULER, schedule.ticket_id, for_update=True)
    if ticket.status in _DONE:
        await _stop(session, SCHEDULER, schedule)
        return
    schedule.next_update_at = next_slot(
        schedule.next_update_at, timedelta(minutes=schedule.every_minutes), now
    )
    await session.flush()
    await _send(session, SCHEDULER, ticket.id, _Update(template_id=schedule.template_id), config)


async def push_back_schedule(
    session: AsyncSession, schedule: TicketUpdateSchedule, error: Exception, now: datetime
) -> None:
    """The ticket's update failed: tried again a little later, the error kept."""
    await session.refresh(schedule)
    schedule.next_update_at = now + RETRY_DELAY
    await session.flush()
    await audit.record(
        session,
        SCHEDULER,
        "ticket.proactive_update_failed",
        tickets.ENTITY,
        schedule.ticket_id,
        after={"error": describe(error), "retry_at": schedule.next_update_at.isoformat()},
    )
