"""The automation pass: the routing rules on the ``scheduled`` trigger, run over every open
ticket, each rule firing once per ticket and episode.

Fire once: a rule that fires on a ticket is recorded in ``automation_firings``; while that
row stands the rule does not fire on the ticket again. It is re-armed when a later pass finds
its conditions false for the ticket (the row is dropped), or when the ticket's status changes
after the firing (a reopened or newly solved ticket is a new episode). Editing a rule keeps
its id and so its firings.

Cost: the pass reads the open tickets in keyset batches (id order) without locking them and
evaluates the compiled rules on facts loaded in bulk, one query per batch and kind (customers
and reminders only when a rule asks for them). Only the tickets where a rule would fire, or a
firing must be forgotten, are then locked with ``FOR UPDATE SKIP LOCKED``, read afresh and
evaluated again before acting, in the batch's transaction. So two passes at once never fire
a rule twice on one ticket (the second finds the row locked, or the firing recorded), and a
pass in which nothing is due writes nothing. A routing trace is kept only where a rule fired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.schemas import Principal, system_principal
from app.customers import service as customers
from app.followups import service as followups
from app.outbound.service import OutboundConfig
from app.queues import service as queues
from app.routing import service as routing
from app.routing.engine import CompiledRuleSet, Decision, evaluate
from app.routing.facts import Facts
from app.routing.service import ScheduledTicket
from app.scheduler import repository
from app.scheduler.items import handle_each
from app.tickets.models import Ticket

log = structlog.get_logger(__name__)

ACTOR = "scheduler"
"""How the audit log names the scheduler's changes."""

_CUSTOMER_FIELDS = ("customer.", "language")


@dataclass
class _Due:
    """What a pass must do on one ticket."""

    ticket: Ticket
    decision: Decision
    facts: Facts
    fire: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)


@dataclass
class _Pass:
    """One automation pass: the rules in force when it began and what they read."""

    version: int
    rules: CompiledRuleSet
    now: datetime
    config: OutboundConfig
    actor: Principal
    customers: bool
    follow_ups: bool
    queues: bool
    queue_names: dict[int, str | None] = field(default_factory=dict)
    """Kept for the whole pass: queues are few and seldom renamed."""

    @classmethod
    def of(
        cls, version: int, rules: CompiledRuleSet, now: datetime, config: OutboundConfig
    ) -> _Pass:
        fields = routing.scheduled_fields(rules)
        return cls(
            version=version,
            rules=rules,
            now=now,
            config=config,
            actor=system_principal(ACTOR),
            customers=any(path.startswith(_CUSTOMER_FIELDS) for path in fields),
            follow_ups="ticket.follow_up_reached" in fields,
            queues="ticket.queue" in fields,
        )

    async def load(self, session: AsyncSession, tickets: Sequence[Ticket]) -> list[ScheduledTicket]:
        """The tickets with what their rules read, one query per kind for all of them."""
        by_customer = (
            {c.id: c for c in await customers.find_many(session, {t.customer_id for t in tickets})}
            if self.customers
            else {}
        )
        reminders = (
            await followups.current_for_tickets(session, [t.id for t in tickets])
            if self.follow_ups
            else {}
        )
        if self.queues:
            for queue_id in {t.queue_id for t in tickets} - self.queue_names.keys():
                if queue_id is not None:
                    queue = await queues.find_queue(session, queue_id)
                    self.queue_names[queue_id] = queue.name if queue else None
        return [
            ScheduledTicket(
                ticket=ticket,
                queue_name=self.queue_names.get(ticket.queue_id) if ticket.queue_id else None,
                customer=by_customer.get(ticket.customer_id),
                follow_up_due_at=(reminders[ticket.id].due_at if ticket.id in reminders else None),
            )
            for ticket in tickets
        ]

    async def due(self, session: AsyncSession, tickets: Sequence[Ticket]) -> list[_Due]:
        """The tickets on which a rule fires or a firing is forgotten, and which."""
        fired = await repository.firings_of(session, [t.id for t in tickets])
        result = []
        for loaded in await self.load(session, tickets):
            ticket = loaded.ticket
            facts = routing.scheduled_facts(loaded, self.now)
            decision = evaluate(self.rules, facts)
            due = _Due(ticket, decision, facts)
            for rule_id, matched in decision.verdicts.items():
                status_then = fired.get((ticket.id, rule_id))
                if matched and status_then != ticket.status_changed_at:
                    due.fire.append(rule_id)
                elif not matched and status_then is not None:
                    due.forget.append(rule_id)
            if due.fire or due.forget:
                result.append(due)
        return result

    async def act(self, session: AsyncSession, due: _Due) -> list[dict[str, object]]:
        """Fire the rules due on the ticket; returns the firings to record."""
        if not due.fire:
            return []
        applied = await routing.fire_scheduled(
            session,
            due.ticket,
            due.decision,
            due.facts,
            version=self.version,
            rule_ids=due.fire,
            actor=self.actor,
            config=self.config,
        )
        log.info(
            "automation_fired",
            ticket_id=due.ticket.id,
            rules=due.fire,
            actions=[entry["outcome"] for entry in applied],
        )
        return [
            {
                "ticket_id": due.ticket.id,
                "rule_id": rule_id,
                "rule_set_version": self.version,
                "fired_at": self.now,
                # Read after the actions: a rule that changes the status stays fired.
                "status_changed_at": due.ticket.status_changed_at,
            }
            for rule_id in due.fire
        ]

    async def run_batch(self, session: AsyncSession, tickets: Sequence[Ticket]) -> int:
        """Act on the batch's tickets where something is due; returns how many rules fired."""
        due = await self.due(session, tickets)
        if not due:
            return 0
        locked = await repository.lock_open_tickets(session, [d.ticket.id for d in due])
        firings: list[dict[str, object]] = []
        forgotten: list[tuple[int, str]] = []

        async def handle(item: _Due) -> None:
            firings.extend(await self.act(session, item))
            forgotten.extend((item.ticket.id, rule_id) for rule_id in item.forget)

        # A ticket whose actions fail is left as it was, without a firing: the rest of the
        # batch goes on, and the next pass (which moves on by id) tries it again.
        await handle_each(session, await self.due(session, locked), handle, name="automations")
        if forgotten:
            await repository.forget_firings(session, forgotten)
        if firings:
            await repository.record_firings(session, firings)
        return len(firings)


async def run_automation_pass(
    maker: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    config: OutboundConfig,
    batch: int = 500,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the scheduled rules in force over every open ticket at ``now``; returns how many
    rules fired. Each batch is one transaction; with ``stop`` set the pass ends between
    batches. Without scheduled rules nothing is read."""
    async with maker() as session:
        version, rules = await routing.compiled_in_force(session)
    if version is None or not routing.has_scheduled_rules(rules):
        return 0
    work = _Pass.of(version, rules, now, config)
    fired = 0
    after_id = 0
    while stop is None or not stop.is_set():
        async with maker.begin() as session:
            tickets = await repository.open_tickets_after(session, after_id, batch)
            if not tickets:
                break
            after_id = tickets[-1].id
            fired += await work.run_batch(session, tickets)
        if len(tickets) < batch:
            break
    return fired
