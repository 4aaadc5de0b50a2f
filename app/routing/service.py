"""Routing: the rules in force (versioned), the facts a ticket shows them, and applying what
they decide; plus trying rules out (simulate) and judging a draft on history (replay).

The engine (``engine.py``) is pure; everything that reads or writes the database is here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal, system_principal
from app.core.clock import utcnow
from app.core.errors import Invalid, NotFound, check_version
from app.core.types import email_domain, unique_in_order
from app.customers import service as customers
from app.customers.models import Customer
from app.db.locks import lock_values
from app.events import service as events
from app.events.schemas import RoutingNotify
from app.followups import service as followups
from app.organisations import service as organisations
from app.outbound import service as outbound
from app.outbound.service import OutboundConfig
from app.queues import service as queues
from app.routing import repository
from app.routing.assignment import Strategy, check_agent, choose_agent
from app.routing.engine import (
    CompiledRuleSet,
    Decision,
    RuleSetError,
    compile_rule_set,
    definition_as_json,
    definition_from_yaml,
    definition_to_yaml,
    evaluate,
)
from app.routing.facts import Facts, Trigger
from app.routing.models import RoutingTrace, RuleSetVersion
from app.routing.rules import (
    Action,
    AddTags,
    Assign,
    Close,
    FieldCondition,
    MarkSpam,
    Notify,
    NotifyEmail,
    NotifyRecipient,
    RaisePriority,
    RemoveTags,
    Rule,
    RuleSetDefinition,
    SendAutoReply,
    SetCategory,
    SetCustomField,
    SetPriority,
    SetQueue,
    SetSlaPolicy,
    walk,
)
from app.routing.schemas import (
    ReplayChange,
    ReplayRead,
    ReplayRequest,
    RoutingTraceRead,
    RuleSetRead,
    SimulatedMessage,
    SimulateRequest,
    SimulationRead,
)
from app.sla import service as sla
from app.teams import service as teams
from app.templates import service as templates
from app.tickets import service as tickets
from app.tickets.models import Channel, Message, Ticket, TicketPriority, TicketStatus
from app.tickets.schemas import MessageCreate, TicketCreate, TicketUpdate

ENTITY = "rule_set"
MAX_BODY_CHARS = 20_000
"""Rules see the first part of a long body: enough for trigger words, bounded in time."""
SPAM_TAG = "spam"
REPLAY_EXAMPLES = 10

_RULES = system_principal("routing")
"""Who looks up whom a rule mails: that is the rule's business (an admin wrote it), not a
question of what the agent whose change set the rule off may see."""

_COMPILED_KEPT = 8
_compiled: dict[tuple[int, datetime], CompiledRuleSet] = {}
"""Compiled rule sets by saved row. A saved version never changes, so every process may keep
its own; the key is the row's id and save time, not the version number, because a version
saved in a transaction that rolled back may be saved again with other rules."""


# --- the rules in force -------------------------------------------------------------------


def _compile(definition: RuleSetDefinition) -> CompiledRuleSet:
    try:
        return compile_rule_set(definition)
    except RuleSetError as exc:
        raise _invalid(exc) from exc


def _invalid(exc: RuleSetError) -> Invalid:
    first = exc.errors[0]
    where = ".".join(str(part) for part in first["loc"])
    return Invalid(
        f"The rule set is not valid at {where or 'the top'}: {first['msg']}",
        field=".".join(str(part) for part in ("body", *first["loc"])),
    )


async def _in_force(session: AsyncSession) -> tuple[RuleSetVersion | None, RuleSetDefinition]:
    current = await repository.current(session)
    if current is None:
        return None, RuleSetDefinition()
    return current, RuleSetDefinition.model_validate(current.definition)


def _compiled_row(saved: RuleSetVersion) -> CompiledRuleSet:
    key = (saved.id, saved.saved_at)
    if key not in _compiled:
        if len(_compiled) >= _COMPILED_KEPT:
            del _compiled[next(iter(_compiled))]  # the oldest compiled: rarely asked for again
        _compiled[key] = _compile(RuleSetDefinition.model_validate(saved.definition))
    return _compiled[key]


async def compiled_in_force(session: AsyncSession) -> tuple[int | None, CompiledRuleSet]:
    current = await repository.current(session)
    if current is None:
        return None, _compile(RuleSetDefinition())
    return current.version, _compiled_row(current)


def _read(current: RuleSetVersion | None, definition: RuleSetDefinition) -> RuleSetRead:
    return RuleSetRead(
        **definition_as_json(definition),
        version=current.version if current else 0,
        saved_at=current.saved_at if current else None,
        saved_by_agent_id=current.saved_by_agent_id if current else None,
        comment=current.comment if current else None,
    )


async def get_rules(session: AsyncSession, actor: Principal) -> RuleSetRead:
    actor.require(AgentRole.supervisor)
    return _read(*await _in_force(session))


async def _check_references(session: AsyncSession, definition: RuleSetDefinition) -> None:
    for r, rule in enumerate(definition.rules):
        await check_action_references(
            session, rule.actions, owner=f"Rule {rule.id!r}", loc=f"body.rules.{r}.actions"
        )


async def check_action_references(
    session: AsyncSession, actions: Sequence[Action], *, owner: str, loc: str
) -> None:
    """Every queue, agent, team, template and SLA policy the actions name must exist, and a
    fixed address to notify must be one mail may go to (rules, SLA escalation steps); ``loc``
    locates the actions in the request."""
    for a, action in enumerate(actions):
        for field, exists in _REFERENCES:
            value = getattr(action, field, None)
            if value is not None and not await exists(session, value):
                raise Invalid(
                    f"{owner}: {field.removesuffix('_id')} {value} does not exist.",
                    field=f"{loc}.{a}.{field}",
                )
        if isinstance(action, NotifyEmail) and action.address is not None:
            refused = await outbound.refused_recipients(session, [action.address])
            if refused:
                raise Invalid(
                    f"{owner}: no mail can go to {action.address}: it {refused[action.address]}.",
                    field=f"{loc}.{a}.address",
                )


async def _queue_exists(session: AsyncSession, queue_id: int) -> bool:
    return await queues.find_queue(session, queue_id) is not None


async def _agent_exists(session: AsyncSession, agent_id: int) -> bool:
    return await agents.find_by_id(session, agent_id) is not None


async def _team_exists(session: AsyncSession, team_id: int) -> bool:
    return await teams.find_team(session, team_id) is not None


async def _template_exists(session: AsyncSession, template_id: int) -> bool:
    return await templates.find_template(session, template_id) is not None


async def _policy_exists(session: AsyncSession, policy_id: int) -> bool:
    return await sla.find_policy(session, policy_id) is not None


_REFERENCES = (
    ("queue_id", _queue_exists),
    ("agent_id", _agent_exists),
    ("team_id", _team_exists),
    ("template_id", _template_exists),
    ("sla_policy_id", _policy_exists),
)


async def save_rules(
    session: AsyncSession,
    actor: Principal,
    definition: RuleSetDefinition,
    *,
    expected_version: int | None,
    comment: str | None = None,
) -> RuleSetRead:
    """Put a new rule set in force as the next version (the whole set: rules are changed by
    saving the set they are in)."""
    actor.require(AgentRole.admin)
    # One writer at a time, so two saves cannot both become version N+1.
    await lock_values(session, "rule-set", ["save"])
    current, before = await _in_force(session)
    check_version(current.version if current else 0, expected_version)
    _compile(definition)
    await _check_references(session, definition)
    saved = RuleSetVersion(
        version=(current.version if current else 0) + 1,
        definition=definition_as_json(definition),
        comment=comment,
        saved_by_agent_id=actor.agent_id,
    )
    await repository.add(session, saved)
    await audit.record(
        session,
        actor,
        "rule_set.saved",
        ENTITY,
        saved.id,
        before={"version": current.version if current else 0, "rules": len(before.rules)},
        after={"version": saved.version, "rules": len(definition.rules), "comment": comment},
    )
    return _read(saved, definition)


def _find(definition: RuleSetDefinition, rule_id: str) -> int:
    for index, rule in enumerate(definition.rules):
        if rule.id == rule_id:
            return index
    raise NotFound(f"There is no rule {rule_id!r} in the rules in force.")


async def get_rule(session: AsyncSession, actor: Principal, rule_id: str) -> tuple[int, Rule]:
    rules = await get_rules(session, actor)
    return rules.version, rules.rules[_find(rules, rule_id)]


async def put_rule(
    session: AsyncSession,
    actor: Principal,
    rule: Rule,
    *,
    position: int | None,
    expected_version: int | None,
) -> RuleSetRead:
    """Add the rule (at ``position``, else last), or replace the rule with its id."""
    _, definition = await _in_force(session)
    rules = list(definition.rules)
    existing = next((i for i, r in enumerate(rules) if r.id == rule.id), None)
    if existing is not None:
        rules.pop(existing)
    at = position if position is not None else existing if existing is not None else len(rules)
    rules.insert(min(at, len(rules)), rule)
    return await save_rules(
        session,
        actor,
        definition.model_copy(update={"rules": rules}),
        expected_version=expected_version,
        comment=f"rule {rule.id} {'changed' if existing is not None else 'added'}",
    )


async def delete_rule(
    session: AsyncSession, actor: Principal, rule_id: str, *, expected_version: int | None
) -> RuleSetRead:
    _, definition = await _in_force(session)
    rules = list(definition.rules)
    rules.pop(_find(definition, rule_id))
    return await save_rules(
        session,
        actor,
        definition.model_copy(update={"rules": rules}),
        expected_version=expected_version,
        comment=f"rule {rule_id} deleted",
    )


async def list_versions(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[RuleSetVersion], str | None]:
    actor.require(AgentRole.supervisor)
    return await repository.list_versions(session, cursor=cursor, limit=limit)


async def get_version(session: AsyncSession, actor: Principal, version: int) -> RuleSetVersion:
    actor.require(AgentRole.supervisor)
    found = await repository.get_version(session, version)
    if found is None:
        raise NotFound(f"There is no rule set version {version}.")
    return found


async def export_yaml(session: AsyncSession, actor: Principal) -> str:
    _, definition = await _in_force(session)
    actor.require(AgentRole.supervisor)
    return definition_to_yaml(definition)


def parse_yaml(text: str) -> RuleSetDefinition:
    try:
        return definition_from_yaml(text)
    except RuleSetError as exc:
        raise _invalid(exc) from exc


async def apply_yaml(
    session: AsyncSession,
    actor: Principal,
    text: str,
    *,
    expected_version: int | None,
    comment: str | None,
) -> RuleSetRead:
    """Put the rules of a YAML file in force (as kept in git); unchanged rules make no new
    version."""
    definition = parse_yaml(text)
    current, in_force = await _in_force(session)
    if current is not None and in_force == definition:
        actor.require(AgentRole.admin)
        return _read(current, in_force)
    return await save_rules(
        session, actor, definition, expected_version=expected_version, comment=comment
    )


# --- facts --------------------------------------------------------------------------------


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def _customer_values(customer: Customer) -> dict[str, Any]:
    """The customer's own fields (loaded with addresses and external ids)."""
    attributes = dict(customer.attributes)
    return {
        "customer.name": customer.name,
        "customer.email": customer.emails[0].email if customer.emails else None,
        "customer.number": customer.customer_number,
        "customer.vip": attributes.get("vip"),
        "customer.segment": attributes.get("segment"),
        "language": customer.language,
        **_prefixed("customer.attributes", attributes),
        **_prefixed(
            "customer.external_ids", {e.system: e.external_id for e in customer.external_ids}
        ),
    }


async def _customer_facts(session: AsyncSession, customer_id: int) -> dict[str, Any]:
    customer = await customers.find_customer(session, customer_id)
    if customer is None:
        return {}
    values = _customer_values(customer)
    values["customer.open_tickets"] = await tickets.count_open_for_customer(session, customer.id)
    if customer.organisation_id is not None:
        organisation = await organisations.find_organisation(session, customer.organisation_id)
        if organisation is not None:
            values["organisation.name"] = organisation.name
            values.update(_prefixed("organisation.attributes", dict(organisation.attributes)))
            values.update(
                _prefixed(
                    "organisation.external_ids",
                    {e.system: e.external_id for e in organisation.external_ids},
                )
            )
    return values


async def _ticket_facts(session: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    queue = await queues.find_queue(session, ticket.queue_id) if ticket.queue_id else None
    return _ticket_values(ticket, queue.name if queue else None)


def _ticket_values(ticket: Ticket, queue_name: str | None) -> dict[str, Any]:
    return {
        "ticket.queue_id": ticket.queue_id,
        "ticket.queue": queue_name,
        "ticket.tags": list(ticket.tags),
        "ticket.priority": ticket.priority.value,
        "ticket.status": ticket.status.value,
        "ticket.category": ticket.category,
        "ticket.channel": ticket.channel.value,
        "ticket.assignee_id": ticket.assignee_id,
        "ticket.team_id": ticket.team_id,
        **_prefixed("ticket.custom_fields", dict(ticket.custom_fields)),
    }


@dataclass(frozen=True)
class MessageFacts:
    """What rules see of a message, whether stored or only simulated."""

    sender: str | None
    to: Sequence[str]
    cc: Sequence[str]
    subject: str
    body: str
    channel: Channel
    attachments: Sequence[tuple[str, str]]
    """(filename, content type) of each attachment."""
    delivered_to: Sequence[str] = ()

    @classmethod
    def of(cls, message: Message, delivered_to: Sequence[str] = ()) -> MessageFacts:
        return cls(
            sender=message.from_address,
            to=message.to_addresses,
            cc=message.cc_addresses,
            subject=message.subject or "",
            body=message.new_text or message.body_text,
            channel=message.channel,
            attachments=[(a.filename, a.content_type) for a in message.attachments],
            delivered_to=delivered_to,
        )

    @classmethod
    def simulated(cls, message: SimulatedMessage) -> MessageFacts:
        return cls(
            sender=message.sender,
            to=message.to,
            cc=message.cc,
            subject=message.subject,
            body=message.body,
            channel=message.channel,
            attachments=[(a.filename, a.content_type) for a in message.attachments],
        )

    def values(self) -> dict[str, Any]:
        return {
            "message.sender": self.sender.lower() if self.sender else None,
            "message.sender_domain": email_domain(self.sender) if self.sender else None,
            "message.to": [a.lower() for a in self.to],
            "message.cc": [a.lower() for a in self.cc],
            "message.recipients": unique_in_order(
                [a.lower() for a in [*self.to, *self.cc, *self.delivered_to]]
            ),
            "message.subject": self.subject,
            "message.body": self.body[:MAX_BODY_CHARS],
            "message.channel": self.channel.value,
            "message.has_attachments": bool(self.attachments),
            "message.attachment_types": [content_type for _, content_type in self.attachments],
            "message.attachment_names": [name for name, _ in self.attachments],
        }


async def facts_for(
    session: AsyncSession,
    ticket: Ticket | None,
    *,
    trigger: Trigger,
    message: MessageFacts | None,
    customer_id: int | None,
    form: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Facts:
    values: dict[str, Any] = {}
    if message is not None:
        values.update(message.values())
    if customer_id is not None:
        values.update(await _customer_facts(session, customer_id))
    if ticket is not None:
        values.update(await _ticket_facts(session, ticket))
    values.update(_prefixed("form", form or {}))
    return Facts(trigger=trigger, now=now or utcnow(), values=values)


def _hours(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round((now - since).total_seconds() / 3600, 2)


@dataclass(frozen=True)
class ScheduledTicket:
    """What the scheduler loaded for one ticket, in bulk for its batch."""

    ticket: Ticket
    queue_name: str | None = None
    customer: Customer | None = None
    follow_up_due_at: datetime | None = None
    """The due time of the ticket's current reminder, if it has one."""


def scheduled_facts(loaded: ScheduledTicket, now: datetime) -> Facts:
    """The facts of a ticket for the scheduled rules at ``now``, without I/O: the ticket's
    and customer's fields and how long ago (or until when) things happened. The hours since
    an agent's reply count from the ticket's creation while no agent has replied, so
    "N hours without an answer" is one condition."""
    ticket = loaded.ticket
    values = _ticket_values(ticket, loaded.queue_name)
    if loaded.customer is not None:
        values.update(_customer_values(loaded.customer))
    until_due = _hours(ticket.sla_due_at, now)
    at_risk = ticket.sla_at_risk_at
    values.update(
        {
            "ticket.hours_since_created": _hours(ticket.created_at, now),
            "ticket.hours_since_updated": _hours(ticket.updated_at, now),
            "ticket.hours_since_status_changed": _hours(ticket.status_changed_at, now),
            "ticket.hours_since_customer_message": _hours(ticket.last_customer_message_at, now),
            "ticket.hours_since_agent_reply": _hours(
                ticket.last_agent_reply_at or ticket.created_at, now
            ),
            "ticket.follow_up_reached": (
                None if loaded.follow_up_due_at is None else loaded.follow_up_due_at <= now
            ),
            "sla.hours_until_due": None if until_due is None else -until_due,
            "sla.breached": ticket.sla_breached,
            "sla.at_risk": not ticket.sla_breached and at_risk is not None and at_risk <= now,
        }
    )
    return Facts(trigger=Trigger.scheduled, now=now, values=values)


async def _scheduled_ticket(session: AsyncSession, ticket: Ticket) -> ScheduledTicket:
    """What the scheduler would load for the ticket (it loads it in bulk for a batch)."""
    queue = await queues.find_queue(session, ticket.queue_id) if ticket.queue_id else None
    reminder = (await followups.current_for_tickets(session, [ticket.id])).get(ticket.id)
    return ScheduledTicket(
        ticket=ticket,
        queue_name=queue.name if queue else None,
        customer=await customers.find_customer(session, ticket.customer_id),
        follow_up_due_at=reminder.due_at if reminder else None,
    )


def scheduled_fields(rules: CompiledRuleSet) -> frozenset[str]:
    """The field paths the enabled scheduled rules read: the scheduler loads only what is
    asked for."""
    return frozenset(
        node.field
        for rule in rules.definition.rules
        if rule.enabled and Trigger.scheduled in rule.triggers and rule.when is not None
        for _, _, node in walk(rule.when)
        if isinstance(node, FieldCondition)
    )


def has_scheduled_rules(rules: CompiledRuleSet) -> bool:
    return any(
        rule.enabled and Trigger.scheduled in rule.triggers for rule in rules.definition.rules
    )


# --- applying a decision ------------------------------------------------------------------


@dataclass
class _Plan:
    """The ticket's fields as the actions leave them, and what each action did."""

    ticket: Ticket
    changes: dict[str, Any]
    applied: list[dict[str, Any]]
    causes: dict[str, str]
    """What each owner of actions is, said for people (a notification says why it came)."""
    auto_replied: bool = False

    def get(self, field: str) -> Any:
        return self.changes.get(field, getattr(self.ticket, field))

    def note(self, rule_id: str, action: Action, outcome: str) -> None:
        self.applied.append(
            {"rule_id": rule_id, "action": action.model_dump(mode="json"), "outcome": outcome}
        )


@dataclass(frozen=True)
class RoutingContext:
    """What applying actions needs beyond the ticket: who acts, where an automatic answer
    may go, and the outbound settings."""

    actor: Principal
    config: OutboundConfig
    reply_to: str | None = None
    """The customer's address, when an automatic answer is allowed (a person wrote)."""
    dry_run: bool = False
    """Work everything out, send and emit nothing (simulation)."""


async def _apply_action(
    session: AsyncSession, plan: _Plan, owner: str, action: Action, context: RoutingContext
) -> str:
    ticket = plan.ticket
    match action:
        case SetQueue(queue_id=queue_id):
            if await queues.find_queue(session, queue_id) is None:
                return f"skipped: queue {queue_id} no longer exists"
            plan.changes["queue_id"] = queue_id
            return f"queue {queue_id}"
        case SetPriority(priority=priority):
            plan.changes["priority"] = TicketPriority(priority.value)
            return f"priority {priority.value}"
        case RaisePriority():
            levels = list(TicketPriority)
            current = levels.index(plan.get("priority"))
            if current == len(levels) - 1:
                return f"priority already {levels[current].value}"
            plan.changes["priority"] = levels[current + 1]
            return f"priority raised to {levels[current + 1].value}"
        case SetCategory(category=category):
            plan.changes["category"] = category
            return f"category {category}"
        case AddTags(tags=tags):
            plan.changes["tags"] = sorted({*plan.get("tags"), *tags})
            return "tags " + ", ".join(plan.changes["tags"])
        case RemoveTags(tags=tags):
            plan.changes["tags"] = sorted(set(plan.get("tags")) - set(tags))
            return "tags " + (", ".join(plan.changes["tags"]) or "(none)")
        case SetCustomField(name=name, value=value):
            plan.changes["custom_fields"] = {**plan.get("custom_fields"), name: value}
            return f"{name} = {value!r}"
        case Assign():
            return await _assign(session, plan, action)
        case SetSlaPolicy(sla_policy_id=policy_id):
            if await sla.find_policy(session, policy_id) is None:
                return f"skipped: SLA policy {policy_id} no longer exists"
            plan.changes["sla_policy_id"] = policy_id
            return f"SLA policy {policy_id}"
        case SendAutoReply(template_id=template_id):
            return await _auto_reply(session, plan, template_id, context)
        case MarkSpam():
            plan.changes["tags"] = sorted({*plan.get("tags"), SPAM_TAG})
            plan.changes["status"] = TicketStatus.closed
            return "marked as spam and closed"
        case Close():
            plan.changes["status"] = TicketStatus.closed
            return "closed"
        case Notify(event=event, note=note):
            if not context.dry_run:
                await events.emit(
                    session, RoutingNotify(ticket_id=ticket.id, event=event, note=note)
                )
            return f"event {event}"
        case NotifyEmail():
            return await _notify_email(session, plan, owner, action, context)
    return "stop: no rule after this one ran"


async def _notify_email(
    session: AsyncSession, plan: _Plan, owner: str, action: NotifyEmail, context: RoutingContext
) -> str:
    if action.address is not None:
        addresses = [action.address]
    else:
        assert action.to is not None  # the rule language requires one of the two
        addresses = await _agent_addresses(session, plan, action.to)
        if not addresses:
            return f"skipped: {_NOBODY[action.to]}"
    if context.dry_run:
        return f"would email {', '.join(addresses)}"
    _, outcome = await outbound.notify(
        session,
        plan.ticket,
        addresses,
        template_id=action.template_id,
        cause=plan.causes[owner],
        current={"priority": plan.get("priority").value, "status": plan.get("status").value},
        config=context.config,
    )
    return outcome


_NOBODY = {
    NotifyRecipient.assignee: "the ticket has no active assignee to email",
    NotifyRecipient.team: "the ticket's team (or its queue's) has no active member to email",
    NotifyRecipient.supervisors: "the ticket's team (or its queue's) has no active supervisor",
}


async def _agent_addresses(session: AsyncSession, plan: _Plan, to: NotifyRecipient) -> list[str]:
    """The addresses of the agents ``to`` names, as the actions so far leave the ticket."""
    if to is NotifyRecipient.assignee:
        assignee_id = plan.get("assignee_id")
        agent = await agents.find_by_id(session, assignee_id) if assignee_id else None
        return [agent.email] if agent is not None and agent.active else []
    team_id = plan.get("team_id")
    queue_id = plan.get("queue_id")
    if team_id is None and queue_id is not None:
        queue = await queues.find_queue(session, queue_id)
        team_id = queue.team_id if queue is not None else None
    if team_id is None:
        return []
    try:
        members = await teams.list_members(session, _RULES, team_id)
    except NotFound:
        return []
    return [
        member.email
        for member in members
        if member.active and (to is NotifyRecipient.team or member.role is AgentRole.supervisor)
    ]


async def _auto_reply(
    session: AsyncSession, plan: _Plan, template_id: int, context: RoutingContext
) -> str:
    if context.reply_to is None:
        return "skipped: no automatic answer to this message (not written by a person)"
    if context.dry_run:
        return f"would send template {template_id} to {context.reply_to}"
    sent, outcome = await outbound.auto_reply(
        session, context.actor, plan.ticket, context.reply_to, template_id, context.config
    )
    plan.auto_replied = plan.auto_replied or sent is not None
    return outcome


async def _assign(session: AsyncSession, plan: _Plan, action: Assign) -> str:
    queue_id = plan.get("queue_id")
    if action.agent_id is not None:
        choice = await check_agent(session, agent_id=action.agent_id, queue_id=queue_id)
    else:
        assert action.strategy is not None  # the rule language requires one of the two
        choice = await choose_agent(
            session,
            strategy=Strategy(action.strategy.value),
            queue_id=queue_id,
            team_id=action.team_id,
            required_skills=action.skills or {},
            exclude_ticket_id=plan.ticket.id,
        )
    if action.team_id is not None:
        plan.changes["team_id"] = action.team_id
    if choice.agent_id is not None:
        plan.changes["assignee_id"] = choice.agent_id
    return choice.reason


async def _apply(
    session: AsyncSession, ticket: Ticket, decision: Decision, context: RoutingContext
) -> _Plan:
    plan = _Plan(ticket=ticket, changes={}, applied=[], causes=_rule_causes(decision))
    for owner, action in zip(decision.owners, decision.actions, strict=True):
        plan.note(owner, action, await _apply_action(session, plan, owner, action, context))
    return plan


def _rule_causes(decision: Decision) -> dict[str, str]:
    return {r.rule_id: f"rule {r.rule_id!r} ({r.name})" for r in decision.trace}


def _trace_rules(decision: Decision) -> list[dict[str, Any]]:
    return [
        {"rule_id": r.rule_id, "name": r.name, "matched": r.matched, "why": r.why}
        for r in decision.trace
    ]


async def route(
    session: AsyncSession,
    ticket: Ticket,
    *,
    trigger: Trigger,
    context: RoutingContext,
    message: Message | None = None,
    delivered_to: Sequence[str] = (),
    form: dict[str, Any] | None = None,
) -> bool:
    """Run the rules in force on the ticket, apply what they decide and keep the trace.
    Returns whether a rule sent the customer an automatic answer. Until rules are saved
    there is nothing to run and no trace to keep."""
    version, rules = await compiled_in_force(session)
    if version is None:
        return False
    facts = await facts_for(
        session,
        ticket,
        trigger=trigger,
        message=MessageFacts.of(message, delivered_to) if message is not None else None,
        customer_id=ticket.customer_id,
        form=form,
    )
    decision = evaluate(rules, facts)
    plan = await _apply(session, ticket, decision, context)
    await _keep(session, context, plan, facts, version, message)
    return plan.auto_replied


async def _keep(
    session: AsyncSession,
    context: RoutingContext,
    plan: _Plan,
    facts: Facts,
    version: int,
    message: Message | None = None,
) -> None:
    """Set the fields the actions decided and keep the trace of the routing."""
    if plan.changes:
        await tickets.apply_routing(session, context.actor, plan.ticket, plan.changes)
    await repository.add_trace(
        session,
        RoutingTrace(
            ticket_id=plan.ticket.id,
            message_id=message.id if message is not None else None,
            trigger=facts.trigger.value,
            rule_set_version=version,
            facts=_facts_json(facts),
            applied=plan.applied,
        ),
    )


async def fire_scheduled(
    session: AsyncSession,
    ticket: Ticket,
    decision: Decision,
    facts: Facts,
    *,
    version: int,
    rule_ids: Collection[str],
    actor: Principal,
    config: OutboundConfig,
) -> list[dict[str, Any]]:
    """Apply the actions of the rules ``rule_ids`` of a scheduled decision (the scheduler
    leaves out the rules that already fired on the ticket) and keep the trace; returns what
    each action did. A template goes to the customer's address: nobody wrote, so the
    scheduler's rule is the one asking."""
    chosen = [
        (owner, action)
        for owner, action in zip(decision.owners, decision.actions, strict=True)
        if owner in rule_ids
    ]
    reply_to = None
    if any(isinstance(action, SendAutoReply) for _, action in chosen):
        reply_to = await customers.primary_email(session, ticket.customer_id)
    context = RoutingContext(actor, config, reply_to=reply_to)
    plan = _Plan(ticket=ticket, changes={}, applied=[], causes=_rule_causes(decision))
    for owner, action in chosen:
        plan.note(owner, action, await _apply_action(session, plan, owner, action, context))
    await _keep(session, context, plan, facts, version)
    return plan.applied


async def apply_actions(
    session: AsyncSession,
    ticket: Ticket,
    actions: Sequence[Action],
    *,
    owner: str,
    cause: str,
    actor: Principal,
    config: OutboundConfig,
) -> list[dict[str, Any]]:
    """Apply actions that no rule decided (an SLA escalation step, named by ``owner`` and
    described for people by ``cause``) as a rule's are applied, set as one routing of the
    ticket; returns what each action did."""
    plan = _Plan(ticket=ticket, changes={}, applied=[], causes={owner: cause})
    context = RoutingContext(actor, config)
    for action in actions:
        plan.note(owner, action, await _apply_action(session, plan, owner, action, context))
    if plan.changes:
        await tickets.apply_routing(session, actor, ticket, plan.changes)
    return plan.applied


def _facts_json(facts: Facts) -> dict[str, Any]:
    return {
        "trigger": facts.trigger.value,
        "now": facts.now.isoformat(),
        "values": dict(facts.values),
    }


async def _compiled_version(session: AsyncSession, version: int) -> CompiledRuleSet | None:
    saved = await repository.get_version(session, version)
    return _compiled_row(saved) if saved is not None else None


async def traces(session: AsyncSession, actor: Principal, ticket_id: int) -> list[RoutingTraceRead]:
    """Why the ticket is routed as it is: every routing of it, newest first, each rule's
    verdict rebuilt from the facts the rules saw."""
    await tickets.get_ticket(session, actor, ticket_id)
    actor.require(AgentRole.agent)
    result = []
    for trace in await repository.traces_of(session, ticket_id):
        rules: list[dict[str, Any]] = []
        if trace.rule_set_version is not None:
            compiled = await _compiled_version(session, trace.rule_set_version)
            if compiled is not None:
                facts = Facts(
                    trigger=Trigger(trace.facts["trigger"]),
                    now=datetime.fromisoformat(trace.facts["now"]),
                    values=trace.facts["values"],
                )
                rules = _trace_rules(evaluate(compiled, facts))
        result.append(
            RoutingTraceRead(
                id=trace.id,
                trigger=Trigger(trace.trigger),
                message_id=trace.message_id,
                rule_set_version=trace.rule_set_version,
                rules=rules,
                applied=trace.applied,
                created_at=trace.created_at,
            )
        )
    return result


# --- the ways tickets come in and change ----------------------------------------------------


async def open_ticket(
    session: AsyncSession, actor: Principal, data: TicketCreate, config: OutboundConfig
) -> Ticket:
    """A ticket created through the API: routed, then (from a web form) acknowledged."""
    ticket = await tickets.create_ticket(session, actor, data)
    first = await tickets.first_message(session, ticket.id)
    address = await customers.primary_email(session, ticket.customer_id)
    by_person = ticket.channel is Channel.web and address is not None
    context = RoutingContext(actor, config, reply_to=address if by_person else None)
    auto_replied = await route(
        session,
        ticket,
        trigger=Trigger.ticket_created,
        context=context,
        message=first,
        form=data.custom_fields if ticket.channel is Channel.web else None,
    )
    if by_person and not auto_replied and address is not None:
        await outbound.acknowledge(session, actor, ticket, address, config)
    return ticket


async def update_ticket(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    changes: TicketUpdate,
    expected_version: int | None,
    config: OutboundConfig,
) -> Ticket:
    """A change through the API, then the rules for ticket updates."""
    ticket = await tickets.update_ticket(session, actor, ticket_id, changes, expected_version)
    await route(
        session, ticket, trigger=Trigger.ticket_updated, context=RoutingContext(actor, config)
    )
    return ticket


async def post_message(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    data: MessageCreate,
    config: OutboundConfig,
) -> Message:
    """A reply, note or recorded customer message; a customer's message runs the rules for
    new messages."""
    message = await outbound.post_message(session, actor, ticket_id, data, config)
    if message.direction.value == "inbound":
        ticket = await tickets.get_ticket(session, actor, ticket_id, for_update=True)
        await route(
            session,
            ticket,
            trigger=Trigger.message_received,
            context=RoutingContext(actor, config),
            message=message,
        )
    return message


# --- trying rules out ---------------------------------------------------------------------


async def simulate(
    session: AsyncSession, actor: Principal, request: SimulateRequest, config: OutboundConfig
) -> SimulationRead:
    """What the rules (in force, or a draft) would decide for a message or an existing ticket;
    nothing is kept: assignments are worked out in a savepoint that is rolled back."""
    actor.require(AgentRole.supervisor)
    if request.message is None and request.ticket_id is None:
        raise Invalid("Give the `message` to route, or a `ticket_id`.", field="body.message")
    if request.rule_set is not None:
        version, rules = None, _compile(request.rule_set)
    else:
        version, rules = await compiled_in_force(session)
    ticket = (
        await tickets.get_ticket(session, actor, request.ticket_id)
        if request.ticket_id is not None
        else None
    )
    message_facts = await _message_facts(session, ticket, request.message)
    customer_id = ticket.customer_id if ticket is not None else None
    if customer_id is None and request.message is not None:
        customer_id = await customers.customer_id_for_email(session, request.message.sender)
    if request.trigger is Trigger.scheduled:
        if ticket is None:
            raise Invalid("Scheduled rules run on a ticket: give a `ticket_id`.", field="body")
        facts = scheduled_facts(await _scheduled_ticket(session, ticket), request.at or utcnow())
    else:
        facts = await facts_for(
            session,
            ticket,
            trigger=request.trigger,
            message=message_facts,
            customer_id=customer_id,
            form=request.message.form if request.message else None,
            now=request.at,
        )
    decision = evaluate(rules, facts)
    context = RoutingContext(
        actor, config, reply_to=message_facts.sender if message_facts else None, dry_run=True
    )
    savepoint = await session.begin_nested()
    try:
        plan = await _apply(session, ticket or _draft_ticket(), decision, context)
    finally:
        await savepoint.rollback()
    return SimulationRead(
        rule_set_version=version,
        rules=_trace_rules(decision),
        applied=plan.applied,
        queue_id=plan.get("queue_id"),
        priority=plan.get("priority"),
        assignee_id=plan.get("assignee_id"),
    )


def _draft_ticket() -> Ticket:
    """A ticket that is not stored, for routing a message that opened none."""
    return Ticket(
        subject="",
        status=TicketStatus.new,
        priority=TicketPriority.normal,
        channel=Channel.email,
        tags=[],
        custom_fields={},
    )


async def _message_facts(
    session: AsyncSession, ticket: Ticket | None, message: SimulatedMessage | None
) -> MessageFacts | None:
    if message is not None:
        return MessageFacts.simulated(message)
    if ticket is None:
        return None
    first = await tickets.first_message(session, ticket.id)
    return MessageFacts.of(first) if first is not None else None


async def replay(session: AsyncSession, actor: Principal, request: ReplayRequest) -> ReplayRead:
    """Run a draft rule set over the tickets of a period, as if each were new, and count how
    many would land elsewhere: judge a change on real history before it goes live."""
    actor.require(AgentRole.supervisor)
    rules = _compile(request.rule_set)
    history = await tickets.created_between(
        session, request.created_after, request.created_before, limit=request.limit
    )
    changed = {"queue_id": 0, "priority": 0, "assignee_id": 0}
    examples: list[ReplayChange] = []
    by_strategy = 0
    for ticket in history:
        first = await tickets.first_message(session, ticket.id)
        facts = await facts_for(
            session,
            ticket,
            trigger=Trigger.ticket_created,
            message=MessageFacts.of(first) if first is not None else None,
            customer_id=ticket.customer_id,
            now=ticket.created_at,
        )
        would = _outcome(evaluate(rules, facts), ticket)
        by_strategy += would.pop("by_strategy")
        for field, value in would.items():
            now = getattr(ticket, field)
            if value != now:
                changed[field] += 1
                if sum(e.field == field for e in examples) < REPLAY_EXAMPLES:
                    examples.append(
                        ReplayChange(
                            ticket_id=ticket.id,
                            number=ticket.number,
                            subject=ticket.subject,
                            field=field,
                            now=now.value if isinstance(now, TicketPriority) else now,
                            would_be=value.value if isinstance(value, TicketPriority) else value,
                        )
                    )
    return ReplayRead(
        tickets=len(history), changed=changed, assigned_by_strategy=by_strategy, examples=examples
    )


def _outcome(decision: Decision, ticket: Ticket) -> dict[str, Any]:
    """Queue, priority and direct assignee a decision leaves the ticket with (no I/O)."""
    outcome: dict[str, Any] = {
        "queue_id": ticket.queue_id,
        "priority": ticket.priority,
        "assignee_id": ticket.assignee_id,
        "by_strategy": 0,
    }
    for action in decision.actions:
        match action:
            case SetQueue(queue_id=queue_id):
                outcome["queue_id"] = queue_id
            case SetPriority(priority=priority):
                outcome["priority"] = TicketPriority(priority.value)
            case Assign(agent_id=None):
                outcome["by_strategy"] = 1
            case Assign(agent_id=agent_id):
                outcome["assignee_id"] = agent_id
    return outcome
