"""Bulk jobs: many tickets changed as one requested, audited job.

The selection is resolved when the job is created (a snapshot of ticket ids), so the job does
the same whatever is created or changed later. Workers then change the tickets in small
batches (``work_batch``), each ticket through the same path as ``PATCH /tickets/{id}``, acting
as the requester with the role and grants they have at that time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from app.core.pagination import SortKey, next_cursor
from app.events import service as events
from app.events.schemas import BulkJobFinished
from app.jobs import repository
from app.jobs.models import BulkJob, BulkJobItem, BulkJobItemState, BulkJobKind, BulkJobState
from app.jobs.schemas import BulkTicketChanges, BulkTicketUpdate
from app.outbound.service import OutboundConfig
from app.queues import service as queues
from app.routing import service as routing
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.tickets.schemas import TicketSort, TicketUpdate

ENTITY = "bulk_job"
DEFAULT_MAX_TICKETS = 10_000
_ITEM_KEY = SortKey(BulkJobItem.id, BulkJobItem.id, descending=False)
_DIRECT_FIELDS = ("status", "queue_id", "assignee_id", "team_id")
_REQUESTER_GONE = "The agent who started the job is deactivated or no longer exists."


def request_id(job_id: int) -> str:
    """What every change the job makes carries as its request id in the audit log."""
    return f"job-{job_id}"


async def _selected_ids(
    session: AsyncSession, actor: Principal, request: BulkTicketUpdate, max_tickets: int
) -> list[int]:
    if request.ticket_ids is not None:
        ids = list(dict.fromkeys(request.ticket_ids))
        if len(ids) > max_tickets:
            raise Invalid(
                f"A bulk job changes at most {max_tickets} tickets; send several jobs.",
                field="body.ticket_ids",
            )
        return ids
    assert request.filter is not None  # the schema asks for one of the two
    rows, more = await tickets.list_tickets(
        session, actor, request.filter, TicketSort.number, None, max_tickets
    )
    if more is not None:
        raise Invalid(
            f"The filter matches more than {max_tickets} tickets, the most one bulk job "
            "changes; narrow the filter (by queue, status, tag or creation date) and send "
            "several jobs.",
            field="body.filter",
        )
    return [ticket.id for ticket in rows]


def _counts(job: BulkJob) -> dict[str, Any]:
    return {
        "state": job.state.value,
        "total": job.total,
        "succeeded": job.succeeded,
        "unchanged": job.unchanged,
        "failed": job.failed,
    }


async def _finish(
    session: AsyncSession,
    actor: Principal,
    job: BulkJob,
    state: BulkJobState,
    now: datetime,
    *,
    action: str = "bulk_job.finished",
) -> None:
    job.state = state
    job.finished_at = now
    await session.flush()
    await audit.record(session, actor, action, ENTITY, job.id, after=_counts(job))
    await events.emit(
        session,
        BulkJobFinished(
            job_id=job.id,
            kind=job.kind,
            state=job.state,
            requester_agent_id=job.requester_agent_id,
            total=job.total,
            succeeded=job.succeeded,
            unchanged=job.unchanged,
            failed=job.failed,
        ),
    )


async def create_ticket_update(
    session: AsyncSession,
    actor: Principal,
    request: BulkTicketUpdate,
    *,
    now: datetime,
    max_tickets: int = DEFAULT_MAX_TICKETS,
) -> BulkJob:
    """Queue a change of many tickets. Agents and above: each ticket is still checked with
    the requester's own permissions when it is changed."""
    actor.require(AgentRole.agent)
    ticket_ids = await _selected_ids(session, actor, request, max_tickets)
    selection = (
        {"ticket_ids": request.ticket_ids}
        if request.ticket_ids is not None
        else {"filter": request.model_dump(mode="json", exclude_unset=True)["filter"]}
    )
    job = BulkJob(
        kind=BulkJobKind.ticket_update,
        state=BulkJobState.queued,
        requester_agent_id=actor.agent_id,
        requester_label=actor.label,
        requester_token_id=actor.token_id,
        source_ip=actor.source_ip,
        request_id=actor.request_id,
        selection=selection,
        changes=request.changes.model_dump(mode="json", exclude_unset=True),
        total=len(ticket_ids),
        succeeded=0,
        unchanged=0,
        failed=0,
        created_at=now,
    )
    await repository.add(session, job, ticket_ids)
    await audit.record(
        session,
        actor,
        "bulk_job.created",
        ENTITY,
        job.id,
        after={
            "kind": job.kind.value,
            "selection": job.selection,
            "changes": job.changes,
            "total": job.total,
        },
    )
    if not ticket_ids:
        await _finish(session, actor, job, BulkJobState.done, now)
    return job


async def get_job(
    session: AsyncSession, actor: Principal, job_id: int, *, for_update: bool = False
) -> BulkJob:
    """The job, for its requester and admins."""
    job = await repository.get(session, job_id, for_update=for_update)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    if job.requester_agent_id != actor.agent_id and not actor.is_at_least(AgentRole.admin):
        raise Forbidden("Only the agent who started a job, and admins, can see it.")
    return job


async def list_items(
    session: AsyncSession,
    actor: Principal,
    job_id: int,
    state: BulkJobItemState | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[BulkJobItem], str | None]:
    await get_job(session, actor, job_id)
    rows = await repository.list_items(
        session, job_id, state, key=_ITEM_KEY, cursor=cursor, limit=limit
    )
    return next_cursor(rows, _ITEM_KEY, limit)


async def cancel_job(
    session: AsyncSession, actor: Principal, job_id: int, now: datetime
) -> BulkJob:
    """Stop a job: tickets not yet worked on stay as they are (their items stay pending)."""
    job = await get_job(session, actor, job_id, for_update=True)
    if job.state not in (BulkJobState.queued, BulkJobState.running):
        raise Conflict(f"Job {job_id} has already ended ({job.state.value}).")
    await _finish(session, actor, job, BulkJobState.cancelled, now, action="bulk_job.cancelled")
    return job


# --- the work -------------------------------------------------------------------------------


def _acting_for(job: BulkJob, role: AgentRole, granted: frozenset[int] = frozenset()) -> Principal:
    return Principal(
        agent_id=job.requester_agent_id,
        label=job.requester_label,
        role=role,
        token_id=job.requester_token_id,
        granted_queue_ids=granted,
        source_ip=job.source_ip,
        request_id=request_id(job.id),
    )


async def _requester(session: AsyncSession, job: BulkJob) -> Principal | None:
    """The requester with the role and grants they have now; None once deactivated."""
    if job.requester_agent_id is None:
        return None
    agent = await agents.find_by_id(session, job.requester_agent_id)
    if agent is None or not agent.active:
        return None
    granted = (
        await queues.granted_queue_ids(session, agent.id)
        if agent.role is AgentRole.external
        else frozenset()
    )
    return _acting_for(job, agent.role, granted)


def _ticket_update(ticket: Ticket, changes: BulkTicketChanges) -> TicketUpdate:
    """The fields of the change that differ from the ticket (none: it already is as asked)."""
    values: dict[str, Any] = {
        field: getattr(changes, field)
        for field in _DIRECT_FIELDS
        if field in changes.model_fields_set and getattr(changes, field) != getattr(ticket, field)
    }
    tags = (set(ticket.tags) | set(changes.add_tags)) - set(changes.remove_tags)
    if tags != set(ticket.tags):
        values["tags"] = sorted(tags)
    try:
        return TicketUpdate.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise Invalid(f"The changed ticket would not be valid: {where}: {error['msg']}") from exc


async def _change_ticket(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    changes: BulkTicketChanges,
    config: OutboundConfig,
) -> BulkJobItemState:
    ticket = await tickets.get_ticket(session, actor, ticket_id, for_update=True)
    update = _ticket_update(ticket, changes)
    if not update.model_fields_set:
        return BulkJobItemState.unchanged
    await routing.update_ticket(session, actor, ticket_id, update, None, config)
    return BulkJobItemState.updated


async def _work_item(
    session: AsyncSession,
    actor: Principal,
    item: BulkJobItem,
    changes: BulkTicketChanges,
    config: OutboundConfig,
) -> None:
    """Change one ticket in a savepoint of its own: a ticket that cannot be changed rolls back
    alone and its item records why."""
    try:
        async with session.begin_nested():
            state = await _change_ticket(session, actor, item.ticket_id, changes, config)
    except DomainError as exc:
        state, item.error = BulkJobItemState.failed, exc.detail
    except (IntegrityError, DataError) as exc:
        state, item.error = BulkJobItemState.failed, f"The database refused the change: {exc.orig}"
    item.state = state


async def _record_progress(
    session: AsyncSession,
    actor: Principal | None,
    job_id: int,
    worked: Sequence[BulkJobItem],
    now: datetime,
) -> None:
    """Add the batch's outcomes to the job, and end it when nothing is left. The job row is
    locked for this, so of two workers finishing the last items at once the one committing
    last sees no pending item left and ends the job."""
    job = await repository.get(session, job_id, for_update=True)
    assert job is not None  # items are deleted with their job only
    outcomes = Counter(item.state for item in worked)
    job.succeeded += outcomes[BulkJobItemState.updated]
    job.unchanged += outcomes[BulkJobItemState.unchanged]
    job.failed += outcomes[BulkJobItemState.failed]
    if job.state is BulkJobState.queued:
        job.state = BulkJobState.running
        job.started_at = now
    await session.flush()
    if job.state is BulkJobState.running and not await repository.has_pending(session, job.id):
        if actor is not None:
            await _finish(session, actor, job, BulkJobState.done, now)
        else:
            # The audit record reads the requester's identity only, not the role.
            gone = _acting_for(job, AgentRole.external)
            await _finish(session, gone, job, BulkJobState.failed, now)


async def work_batch(
    session: AsyncSession, config: OutboundConfig, now: datetime, *, size: int
) -> int:
    """Claim up to ``size`` pending items of one job and change their tickets; returns how
    many were worked on. The items stay locked until the caller commits, and their outcomes
    commit with the tickets' changes: no item is worked on twice, none is lost if a worker
    dies."""
    items = await repository.claim_pending(session, size)
    if not items:
        return 0
    job = await repository.get(session, items[0].job_id)
    assert job is not None
    actor = await _requester(session, job)
    changes = BulkTicketChanges.model_validate(job.changes)
    for item in items:
        if actor is None:
            item.state, item.error = BulkJobItemState.failed, _REQUESTER_GONE
        else:
            await _work_item(session, actor, item, changes, config)
        item.finished_at = now
    await _record_progress(session, actor, job.id, items, now)
    return len(items)
