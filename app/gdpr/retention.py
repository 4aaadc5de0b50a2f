"""Retention: tickets closed longer than their queue's ``retention_months`` are anonymised
(kept as statistics rows, as in an erasure) or deleted, by a scheduler pass; the preview
reports what the next pass would do.

The preview comes first: setting a period does nothing by itself. An admin confirms the
policy seen in the preview (``confirm``, audited as ``retention.confirmed``), and the pass acts
on a queue only while its period and action are still exactly the confirmed ones; any change
of either waits for a new confirmation.

Only tickets are handled. A customer left without tickets is not erased: the customer record
may be kept for other reasons (a contract, the CRM it mirrors), and erasing a person is a
decision taken on their request (``POST /customers/{id}/erase``), not by a timer.
"""

from __future__ import annotations

import calendar
from collections import Counter
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal, system_principal
from app.core.errors import Conflict, NotFound
from app.core.logging import get_logger
from app.gdpr import repository
from app.gdpr.redaction import ERASED
from app.gdpr.schemas import RetentionConfirm, RetentionPreview, RetentionQueuePreview
from app.gdpr.service import Scope, erase_content
from app.queues.models import Queue, RetentionAction
from app.tickets import service as tickets
from app.tickets.models import Ticket

log = get_logger(__name__)

ACTOR = "retention"
"""How the audit log names the retention pass."""


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day when it
    is shorter)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _closed_before(queue: Queue, now: datetime) -> datetime:
    assert queue.retention_months is not None
    return months_before(now, queue.retention_months)


def confirmed(queue: Queue) -> bool:
    return (queue.retention_confirmed_months, queue.retention_confirmed_action) == (
        queue.retention_months,
        queue.retention_action,
    )


async def _preview_of(session: AsyncSession, queue: Queue, now: datetime) -> RetentionQueuePreview:
    closed_before = _closed_before(queue, now)
    count, oldest = await repository.expired_summary(session, queue.id, closed_before, ERASED)
    return RetentionQueuePreview(
        queue_id=queue.id,
        queue_name=queue.name,
        retention_months=queue.retention_months or 0,
        action=queue.retention_action,
        closed_before=closed_before,
        tickets=count,
        oldest_closed_at=oldest,
        confirmed=confirmed(queue),
        confirmed_at=queue.retention_confirmed_at,
    )


async def preview(session: AsyncSession, actor: Principal, now: datetime) -> RetentionPreview:
    """Per queue with a retention period: how many tickets the pass would handle at ``now``,
    and the oldest, and whether the policy is confirmed (admin). Nothing is changed."""
    actor.require(AgentRole.admin)
    items = [await _preview_of(session, q, now) for q in await repository.retention_queues(session)]
    return RetentionPreview(at=now, queues=items)


async def confirm(
    session: AsyncSession, actor: Principal, queue_id: int, policy: RetentionConfirm, now: datetime
) -> RetentionQueuePreview:
    """Let the pass act on the queue with the policy the admin saw in the preview (admin);
    a policy that is no longer the queue's is a conflict. Audited as ``retention.confirmed``
    with the preview's figures."""
    actor.require(AgentRole.admin)
    queue = await repository.queue(session, queue_id, lock=True)
    if queue is None:
        raise NotFound(f"Queue {queue_id} does not exist.")
    if (queue.retention_months, queue.retention_action) != (
        policy.retention_months,
        policy.retention_action,
    ):
        raise Conflict(
            f"Queue {queue_id} keeps closed tickets for {queue.retention_months} months "
            f"({queue.retention_action.value}), not the policy confirmed: preview it again."
        )
    queue.retention_confirmed_months = queue.retention_months
    queue.retention_confirmed_action = queue.retention_action
    queue.retention_confirmed_at = now
    await session.flush()
    report = await _preview_of(session, queue, now)
    await audit.record(
        session,
        actor,
        "retention.confirmed",
        "queue",
        queue_id,
        after=report.model_dump(mode="json", include={"retention_months", "action", "tickets"}),
    )
    return report


async def apply(
    session: AsyncSession, actor: Principal, queue: Queue, ticket_ids: list[int]
) -> dict[str, int]:
    """Anonymise or delete the tickets (locked by the caller) as the queue says; audited as
    one ``retention.applied`` event on the queue, which also redacts the audit events about
    the tickets; each ticket gets a ``ticket.deleted`` or ``ticket.updated`` event."""
    messages = await repository.messages_of(session, ticket_ids)
    counts: Counter[str] = Counter()
    scope = Scope(ticket_ids=ticket_ids, message_ids=[m.id for m in messages])
    redactions = await erase_content(session, scope, counts)
    deleting = queue.retention_action is RetentionAction.delete
    await tickets.emit_removed(session, ticket_ids, deleted=deleting, erased=ERASED)
    if deleting:
        counts["tickets"] = await repository.delete_by_id(session, Ticket.id, ticket_ids)
    else:
        counts["tickets"] = await repository.anonymise_tickets(session, ticket_ids, ERASED)
    for message in messages:
        session.expunge(message)
    erased = dict(sorted(counts.items()))
    await audit.redact(
        session,
        actor,
        redactions,
        "retention.applied",
        "queue",
        queue.id,
        after={
            "action": queue.retention_action.value,
            "retention_months": queue.retention_months,
            "ticket_ids": ticket_ids,
            "erased": erased,
        },
    )
    return erased


async def run_retention_pass(
    maker: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = 200
) -> int:
    """Anonymise or delete every ticket past its queue's confirmed retention at ``now``;
    returns how many. Each batch is claimed (``FOR UPDATE SKIP LOCKED``) and handled in one
    transaction, so passes side by side never handle a ticket twice. A ticket that cannot be
    handled is logged and left for the next pass, never holding back the others."""
    actor = system_principal(ACTOR)
    async with maker() as session:
        queues = [q for q in await repository.retention_queues(session) if confirmed(q)]
    handled = 0
    for queue in queues:
        closed_before = _closed_before(queue, now)
        failed: set[int] = set()
        while True:
            async with maker.begin() as session:
                ticket_ids = await repository.claim_expired(
                    session, queue.id, closed_before, ERASED, batch, skip=failed
                )
                done = await _apply_batch(session, actor, queue, ticket_ids)
            handled += len(done)
            failed |= set(ticket_ids) - set(done)
            if len(ticket_ids) < batch:
                break
    return handled


async def _apply_batch(
    session: AsyncSession, actor: Principal, queue: Queue, ticket_ids: list[int]
) -> list[int]:
    """Apply the batch in a savepoint; should it fail, each ticket in a savepoint of its own,
    so one that cannot be handled is skipped (and logged). The tickets handled."""
    if not ticket_ids:
        return []
    try:
        async with session.begin_nested():
            await apply(session, actor, queue, ticket_ids)
        return ticket_ids
    except Exception:
        log.warning("retention_batch_failed", queue_id=queue.id, tickets=len(ticket_ids))
    done = []
    for ticket_id in ticket_ids:
        try:
            async with session.begin_nested():
                await apply(session, actor, queue, [ticket_id])
            done.append(ticket_id)
        except Exception:
            log.exception("retention_ticket_failed", queue_id=queue.id, ticket_id=ticket_id)
    return done
