from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import Agent, AgentRole
from app.attachments import service as attachments
from app.attachments.models import Attachment
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.clock import utcnow
from app.core.errors import Conflict, Forbidden, Invalid, NotFound, check_version
from app.core.html import sanitise_html
from app.core.pagination import SortKey, next_cursor
from app.customers import service as customers
from app.customers.schemas import CustomerRead
from app.events import service as events
from app.events.schemas import (
    EventData,
    FieldChange,
    MessageCreated,
    TicketAssigned,
    TicketCreated,
    TicketDeleted,
    TicketStatusChanged,
    TicketUpdated,
    field_changes,
)
from app.gdpr import service as subject_rights
from app.privacy import service as privacy
from app.privacy.detectors import mask_text, mask_values
from app.queues import service as queues
from app.queues.models import CustomerFields
from app.sla import service as sla
from app.sla.schemas import SlaTargetLive
from app.teams import service as teams
from app.tickets import repository
from app.tickets.models import (
    CONVERSATION_KINDS,
    Channel,
    LinkKind,
    LinkState,
    MailKind,
    Message,
    MessageDirection,
    Ticket,
    TicketLink,
    TicketPriority,
    TicketStatus,
)
from app.tickets.schemas import (
    MailMessage,
    MessageCreate,
    MessageRead,
    ThreadCandidate,
    TicketCreate,
    TicketFilters,
    TicketInclude,
    TicketRead,
    TicketSort,
    TicketUpdate,
)

ENTITY = "ticket"
SUBJECT_LIMIT = 998
"""RFC 5322's line limit, and the column's: a longer mail subject is cut, not refused."""

_SORT_COLUMNS = {
    "created_at": Ticket.created_at,
    "updated_at": Ticket.updated_at,
    "number": Ticket.number,
    "priority": Ticket.priority,
    "due_at": Ticket.sla_due_order,
}
_OPEN_AGAIN = {TicketStatus.pending, TicketStatus.solved, TicketStatus.closed}


def sort_key(sort: TicketSort) -> SortKey:
    name = sort.value.removeprefix("-")
    return SortKey(_SORT_COLUMNS[name], Ticket.id, descending=sort.value.startswith("-"))


def _snapshot(ticket: Ticket) -> audit.Snapshot:
    return audit.snapshot(TicketRead.model_validate(ticket))


async def get_ticket(
    session: AsyncSession, actor: Principal, ticket_id: int, *, for_update: bool = False
) -> Ticket:
    """The ticket, if it exists and the actor may see it (external agents: granted queues).

    ``for_update`` locks it for a change, so two writers at once queue up instead of one
    failing on the version check it never asked for."""
    ticket = await repository.get(session, ticket_id, for_update=for_update)
    if ticket is None or not actor.can_see_queue(ticket.queue_id):
        raise NotFound(f"Ticket {ticket_id} does not exist.")
    return ticket


async def list_tickets(
    session: AsyncSession,
    actor: Principal,
    filters: TicketFilters,
    sort: TicketSort,
    cursor: str | None,
    limit: int,
) -> tuple[list[Ticket], str | None]:
    visible = actor.granted_queue_ids if actor.is_external else None
    key = sort_key(sort)
    rows = await repository.list_tickets(
        session, filters, visible, key, cursor, limit, now=utcnow()
    )
    return next_cursor(rows, key, limit)


def includes(
    actor: Principal, raw: str | None, allowed: frozenset[TicketInclude]
) -> frozenset[TicketInclude]:
    """The related kinds asked for with ``include`` (comma-separated); an unknown or
    unsupported kind is invalid; external partners may not have follow-ups (their notes are
    internal)."""
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    unknown = sorted({name for name in names if name not in {kind.value for kind in allowed}})
    if unknown:
        raise Invalid(
            f"Unknown include value(s): {', '.join(unknown)}; choose from "
            f"{', '.join(sorted(allowed))}.",
            field="query.include",
        )
    kinds = frozenset(TicketInclude(name) for name in names)
    if actor.is_external and TicketInclude.follow_up in kinds:
        raise Forbidden("Follow-ups are internal notes: external partners cannot include them.")
    return kinds


async def sla_targets(
    session: AsyncSession, tickets: Sequence[Ticket]
) -> dict[int, list[SlaTargetLive]]:
    """The running SLA targets of each ticket as they stand now, by ticket id."""
    return await sla.live_targets(session, tickets, utcnow())


@dataclass(frozen=True)
class Related:
    """The records ``include`` asked for: each kind loaded with one query for all tickets."""

    kinds: frozenset[TicketInclude]
    customers: dict[int, CustomerRead]
    agents: Sequence[Agent]
    messages: Sequence[Message]


MESSAGES_INCLUDED = 20
"""How many messages ``include=messages`` side-loads per ticket (the latest): a long thread
is paged through ``GET /tickets/{id}/messages``."""


async def related(
    session: AsyncSession,
    actor: Principal,
    tickets: Sequence[Ticket],
    kinds: frozenset[TicketInclude],
) -> Related:
    """The tickets' related records of these kinds (from ``includes``); external partners
    get public messages only, and customers reduced to what their grants show. Each customer
    and message side-loaded is a read of personal data, audited as ``customer.viewed`` and
    ``message.viewed``."""
    found_customers: dict[int, CustomerRead] = {}
    found_agents: Sequence[Agent] = []
    found_messages: Sequence[Message] = []
    if TicketInclude.customer in kinds:
        found_customers = await _customers_of(session, actor, tickets)
        await audit.record_reads(session, actor, "customer", found_customers)
    assignees = {t.assignee_id for t in tickets if t.assignee_id is not None}
    if TicketInclude.assignee in kinds and assignees:
        found_agents = await agents.find_many(session, assignees)
    if TicketInclude.messages in kinds:
        found_messages = await repository.latest_messages(
            session,
            [t.id for t in tickets],
            public_only=actor.is_external,
            per_ticket=MESSAGES_INCLUDED,
        )
        await audit.record_reads(session, actor, "message", [m.id for m in found_messages])
    return Related(kinds, found_customers, found_agents, found_messages)


def partner_customer_fields(shown: Mapping[int, CustomerFields], ticket: Ticket) -> CustomerFields:
    """What an outside partner with these grants (``queues.customer_fields``) sees of the
    ticket's customer: the grant of its queue, nothing when the customer is withheld."""
    if ticket.customer_withheld:
        return CustomerFields.none
    return shown.get(ticket.queue_id or 0, CustomerFields.none)


async def _customers_of(
    session: AsyncSession, actor: Principal, tickets: Sequence[Ticket]
) -> dict[int, CustomerRead]:
    """The tickets' customers; for an external partner only those of tickets in queues whose
    grant shows customers, and only their name, or name and addresses."""
    if not actor.is_external:
        found = await customers.find_many(session, {t.customer_id for t in tickets})
        return {c.id: CustomerRead.model_validate(c) for c in found}
    shown = await queues.customer_fields(session, actor)
    if all(fields is CustomerFields.none for fields in shown.values()):
        raise Forbidden("Your grants show no customer data.")
    fields_of: dict[int, CustomerFields] = {}
    for ticket in tickets:
        fields = partner_customer_fields(shown, ticket)
        if fields is not CustomerFields.none and fields_of.get(ticket.customer_id) is not (
            CustomerFields.name_and_email
        ):
            fields_of[ticket.customer_id] = fields
    reduced = {}
    for customer in await customers.find_many(session, set(fields_of)):
        read = CustomerRead.model_validate(customer)
        reduced[customer.id] = CustomerRead(
            id=read.id,
            name=read.name,
            emails=read.emails if fields_of[customer.id] is CustomerFields.name_and_email else [],
            phone=None,
            customer_number=None,
            external_ids={},
            organisation_id=None,
            language=None,
            attributes={},
            blocked=False,
            created_at=read.created_at,
            updated_at=read.updated_at,
            version=read.version,
        )
    return reduced


async def _check_queue(session: AsyncSession, actor: Principal, queue_id: int) -> TicketPriority:
    queue = await queues.find_queue(session, queue_id)
    # A queue an external partner has no grant for does not exist, as far as they can tell.
    if queue is None or not actor.can_see_queue(queue_id):
        raise Invalid(f"Queue {queue_id} does not exist.", field="body.queue_id")
    return queue.default_priority


async def _check_assignee(
    session: AsyncSession, actor: Principal, assignee_id: int | None, queue_id: int | None
) -> None:
    """The assignee must be active and, if an outside partner, granted the ticket's queue.
    Partners may only take tickets themselves (and not unassign others)."""
    if actor.is_external and assignee_id != actor.agent_id:
        raise Forbidden("External partners can assign tickets only to themselves.")
    if assignee_id is None:
        return
    agent = await agents.find_by_id(session, assignee_id)
    if agent is None or not agent.active:
        raise Invalid(
            f"Agent {assignee_id} does not exist or is inactive.", field="body.assignee_id"
        )
    if agent.role is AgentRole.external and queue_id not in await queues.granted_queue_ids(
        session, agent.id
    ):
        raise Invalid(
            f"Agent {assignee_id} is an external partner without a grant for this ticket's queue.",
            field="body.assignee_id",
        )


async def _check_team(session: AsyncSession, team_id: int) -> None:
    if await teams.find_team(session, team_id) is None:
        raise Invalid(f"Team {team_id} does not exist.", field="body.team_id")


def _customer_wrote(ticket: Ticket) -> None:
    """The ball is in our court again."""
    ticket.last_customer_message_at = utcnow()
    if ticket.status in _OPEN_AGAIN:
        _apply_status(ticket, TicketStatus.open)


def _apply_status(ticket: Ticket, status: TicketStatus) -> None:
    if status == ticket.status:
        return
    now = utcnow()
    ticket.status = status
    ticket.status_changed_at = now
    if status is TicketStatus.solved:
        ticket.solved_at = now
    elif status is TicketStatus.closed:
        ticket.closed_at = now
        ticket.solved_at = ticket.solved_at or now
    else:
        ticket.solved_at = None
        ticket.closed_at = None


async def create_ticket(session: AsyncSession, actor: Principal, data: TicketCreate) -> Ticket:
    if actor.is_external and data.queue_id is None:
        raise Invalid(
            "External partners must create tickets in a granted queue.", field="body.queue_id"
        )
    if actor.is_external and data.customer.id is not None:
        # Partners see no customer records: naming one by id would reveal its contact data.
        raise Forbidden("External partners name the customer by email, not by id.")
    default_priority = TicketPriority.normal
    if data.queue_id is not None:
        default_priority = await _check_queue(session, actor, data.queue_id)
    if data.assignee_id is not None:
        await _check_assignee(session, actor, data.assignee_id, data.queue_id)
    if data.team_id is not None:
        await _check_team(session, data.team_id)
    withheld = (
        actor.is_external
        and data.customer.email is not None
        and await customers.customer_id_for_email(session, data.customer.email) is not None
    )
    customer = await customers.resolve_customer(
        session,
        actor,
        customer_id=data.customer.id,
        email=data.customer.email,
        name=data.customer.name,
    )
    # An erasure of the customer under way is waited for, and nothing new is filed under an
    # erased customer: named by address the person starts afresh, by id it is refused.
    if await subject_rights.erased_customers(session, [customer.id]):
        if data.customer.id is not None:
            raise Invalid(
                f"Customer {customer.id} was erased: name the person by email.",
                field="body.customer.id",
            )
        customer = await customers.resolve_customer(
            session, actor, customer_id=None, email=data.customer.email, name=data.customer.name
        )
    ticket = Ticket(
        subject=data.subject,
        status=TicketStatus.new,
        priority=data.priority or default_priority,
        channel=Channel(data.channel.value),
        queue_id=data.queue_id,
        assignee_id=data.assignee_id,
        team_id=data.team_id,
        customer_id=customer.id,
        category=data.category,
        tags=sorted(set(data.tags)),
        custom_fields=data.custom_fields,
        customer_withheld=withheld,
        last_customer_message_at=utcnow(),
    )
    _apply_status(ticket, data.status)
    await _save_ticket(session, actor, ticket)
    message = Message(
        ticket_id=ticket.id,
        direction=MessageDirection.inbound,
        is_public=True,
        channel=ticket.channel,
        author_customer_id=customer.id,
        from_address=await customers.primary_email(session, customer.id),
        to_addresses=[],
        cc_addresses=[],
        subject=data.subject,
        body_text=data.message.body_text,
        body_html=sanitise_html(data.message.body_html)
        if data.message.body_html is not None
        else None,
        references=[],
        attachments=await attachments.store(session, data.message.attachments),
    )
    await _save_message(session, actor, ticket, message)
    return ticket


async def _save_ticket(session: AsyncSession, actor: Principal, ticket: Ticket) -> None:
    session.add(ticket)
    await session.flush()
    await audit.record(session, actor, "ticket.created", ENTITY, ticket.id, after=_snapshot(ticket))
    await sla.refresh(session, ticket, utcnow())
    await events.emit(
        session,
        TicketCreated(
            ticket_id=ticket.id,
            number=ticket.number,
            subject=mask_text(ticket.subject),
            status=ticket.status,
            priority=ticket.priority,
            channel=ticket.channel,
            queue_id=ticket.queue_id,
            assignee_id=ticket.assignee_id,
            team_id=ticket.team_id,
            customer_id=ticket.customer_id,
        ),
    )


async def _record_change(
    session: AsyncSession,
    actor: Principal,
    action: str,
    ticket: Ticket,
    before: audit.Snapshot,
) -> None:
    """Audit a change of the ticket and raise its events, both from one comparison of the
    snapshots before and after; its SLA targets follow the change."""
    await sla.refresh(session, ticket, utcnow())
    old, new = audit.changed_fields(before, _snapshot(ticket))
    await audit.record(session, actor, action, ENTITY, ticket.id, before=old, after=new)
    changes = _masked(field_changes(old, new))
    if not changes:
        return
    await events.emit(
        session, TicketUpdated(ticket_id=ticket.id, number=ticket.number, changes=changes)
    )
    if changes.keys() & {"assignee_id", "team_id"}:
        await events.emit(
            session,
            TicketAssigned(
                ticket_id=ticket.id,
                number=ticket.number,
                assignee_id=ticket.assignee_id,
                team_id=ticket.team_id,
                previous_assignee_id=before["assignee_id"],
                previous_team_id=before["team_id"],
            ),
        )
    if "status" in changes:
        await events.emit(
            session,
            TicketStatusChanged(
                ticket_id=ticket.id,
                number=ticket.number,
                status=ticket.status,
                previous_status=before["status"],
            ),
        )


_MASKED_FIELDS = frozenset({"subject", "custom_fields"})
"""Fields whose text may quote identity, card or account numbers: masked in events as in
`ticket.created`, since webhooks carry events out of the system."""


def _masked(changes: dict[str, FieldChange]) -> dict[str, FieldChange]:
    return {
        name: FieldChange(from_=mask_values(change.from_), to=mask_values(change.to))
        if name in _MASKED_FIELDS
        else change
        for name, change in changes.items()
    }


def _updated(ticket_id: int, number: int, field: str, before: Any, after: Any) -> TicketUpdated:
    """``ticket.updated`` for a change of one field made to many tickets at once."""
    return TicketUpdated(
        ticket_id=ticket_id,
        number=number,
        changes=_masked({field: FieldChange(from_=before, to=after)}),
    )


async def _save_message(
    session: AsyncSession,
    actor: Principal,
    ticket: Ticket,
    message: Message,
    *,
    automatic_update: bool = False,
) -> None:
    session.add(message)
    await session.flush()
    await privacy.scan_message(session, message)
    await sla.on_message(session, ticket, message, utcnow(), automatic_update=automatic_update)
    await events.emit(
        session,
        MessageCreated(
            message_id=message.id,
            ticket_id=ticket.id,
            ticket_number=ticket.number,
            direction=message.direction,
            public=message.is_public,
            author_agent_id=message.author_agent_id,
            author_customer_id=message.author_customer_id,
        ),
    )
    await audit.record(
        session,
        actor,
        "message.created",
        "message",
        message.id,
        after={
            "ticket_id": message.ticket_id,
            "direction": message.direction.value,
            "public": message.is_public,
            "attachments": len(message.attachments),
        },
    )


async def update_ticket(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    changes: TicketUpdate,
    expected_version: int | None,
) -> Ticket:
    ticket = await get_ticket(session, actor, ticket_id, for_update=True)
    check_version(ticket.version, expected_version)
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    queue_id = values.get("queue_id", ticket.queue_id)
    if queue_id != ticket.queue_id:
        if queue_id is None:
            if actor.is_external:
                raise Forbidden("External partners cannot take a ticket out of its queue.")
        else:
            await _check_queue(session, actor, queue_id)
    assignee_id = values.get("assignee_id", ticket.assignee_id)
    if assignee_id != ticket.assignee_id or queue_id != ticket.queue_id:
        # A new queue re-checks the assignee: a partner must not keep a ticket they lost.
        await _check_assignee(session, actor, assignee_id, queue_id)
    if values.get("team_id") is not None:
        await _check_team(session, values["team_id"])
    before = _snapshot(ticket)
    if "status" in values:
        _apply_status(ticket, values.pop("status"))
    if "custom_fields" in values:
        merged = {**ticket.custom_fields, **(values.pop("custom_fields") or {})}
        ticket.custom_fields = {k: v for k, v in merged.items() if v is not None}
    if "tags" in values:
        ticket.tags = sorted(set(values.pop("tags")))
    for field, value in values.items():
        setattr(ticket, field, value)
    await session.flush()
    await _record_change(session, actor, "ticket.updated", ticket, before)
    return ticket


async def reply_recipients(session: AsyncSession, ticket: Ticket, data: MessageCreate) -> list[str]:
    """Who a reply goes to: the addresses given, else the customer's address."""
    if data.to is not None:
        return list(data.to)
    address = await customers.primary_email(session, ticket.customer_id)
    return [address] if address else []


async def add_message(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    data: MessageCreate,
    *,
    copied_attachments: Sequence[Attachment] = (),
    automatic_update: bool = False,
) -> Message:
    """A reply, an internal note, or a recorded customer message; moves the ticket on.
    Mailing a reply is the outbound domain's part. An ``automatic_update`` (a proactive or
    incident status update) is a public message marked as automatic: it is no agent's
    reply, so it meets only the periodic update target and leaves the status alone."""
    ticket = await get_ticket(session, actor, ticket_id, for_update=True)
    before = _snapshot(ticket)
    customer_email = await customers.primary_email(session, ticket.customer_id)
    inbound = data.direction is MessageDirection.inbound
    is_reply = data.public and not inbound
    message = Message(
        ticket_id=ticket.id,
        direction=data.direction,
        is_public=data.public,
        channel=Channel.api,
        author_agent_id=None if inbound else actor.agent_id,
        author_customer_id=ticket.customer_id if inbound else None,
        from_address=customer_email if inbound else None,
        to_addresses=await reply_recipients(session, ticket, data) if is_reply else [],
        cc_addresses=data.cc if is_reply else [],
        bcc_addresses=data.bcc if is_reply else [],
        subject=ticket.subject,
        body_text=data.body_text,
        body_html=sanitise_html(data.body_html) if data.body_html is not None else None,
        references=[],
        template_id=data.template_id,
        attachments=[*await attachments.store(session, data.attachments), *copied_attachments],
        delivery=None,
    )
    automatic_update = automatic_update and is_reply
    if automatic_update:
        message.kind = MailKind.auto_reply
    await _save_message(session, actor, ticket, message, automatic_update=automatic_update)
    if inbound:
        _customer_wrote(ticket)
    elif is_reply and not automatic_update:
        ticket.first_response_at = ticket.first_response_at or utcnow()
        ticket.last_agent_reply_at = utcnow()
        if ticket.status is TicketStatus.new:
            _apply_status(ticket, TicketStatus.open)
    await _message_added(session, actor, ticket, before)
    return message


async def _message_added(
    session: AsyncSession, actor: Principal, ticket: Ticket, before: audit.Snapshot
) -> None:
    # A new message is a change of the ticket for anyone syncing by updated_at.
    ticket.touch()
    await session.flush()
    await _record_change(session, actor, "ticket.updated", ticket, before)


async def add_automatic_reply(
    session: AsyncSession,
    actor: Principal,
    ticket: Ticket,
    *,
    to: str,
    subject: str,
    body_text: str,
    body_html: str,
    template_id: int | None,
) -> Message:
    """A message no person wrote (an acknowledgement): public, but no first response."""
    message = Message(
        ticket_id=ticket.id,
        direction=MessageDirection.outbound,
        is_public=True,
        channel=Channel.email,
        to_addresses=[to],
        cc_addresses=[],
        bcc_addresses=[],
        subject=subject[:SUBJECT_LIMIT],
        body_text=body_text,
        body_html=body_html,
        references=[],
        kind=MailKind.auto_reply,
        template_id=template_id,
        attachments=[],
        delivery=None,
    )
    await _save_message(session, actor, ticket, message)
    await _message_added(session, actor, ticket, _snapshot(ticket))
    return message


async def find_by_status_token(session: AsyncSession, token: str) -> Ticket | None:
    """The ticket of a status-page link; a merged ticket's link shows the one it joined."""
    return await _merge_target(session, await repository.find_by_status_token(session, token))


async def conversation(session: AsyncSession, ticket_id: int, *, limit: int) -> list[Message]:
    """The latest messages between customer and support, oldest first: no internal notes and
    nothing written by machines."""
    return await repository.conversation(session, ticket_id, CONVERSATION_KINDS, limit)


async def first_message(session: AsyncSession, ticket_id: int) -> Message | None:
    """The message that opened the ticket, with its attachments."""
    return await repository.first_message(session, ticket_id)


async def created_between(
    session: AsyncSession, after: datetime, before: datetime | None, *, limit: int
) -> list[Ticket]:
    """Tickets created in the period, oldest first."""
    return await repository.created_between(session, after, before, limit)


async def last_customer_mail(session: AsyncSession, ticket_id: int) -> Message | None:
    """The newest mail the customer sent on the ticket: what a reply answers."""
    return await repository.last_inbound_mail(session, ticket_id)


async def message_with_attachments(session: AsyncSession, message_id: int) -> Message:
    message = await repository.get_message(session, message_id, with_attachments=True)
    if message is None:
        raise NotFound(f"Message {message_id} does not exist.")
    return message


async def visible_message(session: AsyncSession, actor: Principal, message_id: int) -> Message:
    """The message, if the actor may see its ticket (and, for external partners, it is
    public)."""
    message = await repository.get_message(session, message_id)
    if message is None or (actor.is_external and not message.is_public):
        raise NotFound(f"Message {message_id} does not exist.")
    try:
        await get_ticket(session, actor, message.ticket_id)
    except NotFound:
        raise NotFound(f"Message {message_id} does not exist.") from None
    return message


_NO_ADDRESSES: dict[str, Any] = {
    "from_address": None,
    "to": [],
    "cc": [],
    "bcc": [],
    "reply_to": [],
}


async def message_reads(
    session: AsyncSession, actor: Principal, messages: Sequence[Message]
) -> list[MessageRead]:
    """Messages as the API shows them: sensitive values masked, for every role; for an
    external partner, mail addresses only where their grant shows the customer's address."""
    findings = await privacy.findings_by_message(session, [m.id for m in messages])
    hidden: set[int] = set()
    if actor.is_external:
        shown = await queues.customer_fields(session, actor)
        for ticket_id in {m.ticket_id for m in messages}:
            ticket = await repository.get(session, ticket_id)
            if (
                ticket is None
                or partner_customer_fields(shown, ticket) is not CustomerFields.name_and_email
            ):
                hidden.add(ticket_id)
    reads = []
    for message in messages:
        texts, found = privacy.masked(privacy.message_texts(message), findings.get(message.id, []))
        update: dict[str, Any] = {field.value: text for field, text in texts.items()}
        update["findings"] = found
        if message.ticket_id in hidden:
            update.update(_NO_ADDRESSES)
        reads.append(MessageRead.model_validate(message).model_copy(update=update))
    return reads


async def attachment_content(session: AsyncSession, attachment: Attachment) -> bytes:
    return await attachments.blob(session, attachment.sha256)


async def list_messages(
    session: AsyncSession, actor: Principal, ticket_id: int, cursor: str | None, limit: int
) -> tuple[list[Message], str | None]:
    await get_ticket(session, actor, ticket_id)
    key = SortKey(Message.id, Message.id, descending=False)
    rows = await repository.list_messages(
        session, [ticket_id], public_only=actor.is_external, key=key, cursor=cursor, limit=limit
    )
    return next_cursor(rows, key, limit)


async def customer_history(
    session: AsyncSession, actor: Principal, customer_id: int, cursor: str | None, limit: int
) -> tuple[list[tuple[Ticket, list[Message]]], str | None]:
    """Every ticket of the customer, newest first, each with all its messages."""
    await customers.get_customer(session, actor, customer_id)
    tickets, cursor_out = await list_tickets(
        session,
        actor,
        TicketFilters(customer_id=customer_id),
        TicketSort.created_at_desc,
        cursor,
        limit,
    )
    messages = await repository.list_messages(
        session, [t.id for t in tickets], public_only=actor.is_external
    )
    by_ticket: dict[int, list[Message]] = {t.id: [] for t in tickets}
    for message in messages:
        by_ticket[message.ticket_id].append(message)
    return [(t, by_ticket[t.id]) for t in tickets], cursor_out


async def get_attachment(session: AsyncSession, actor: Principal, attachment_id: int) -> Attachment:
    """An attachment, if the actor may see its ticket and message."""
    attachment = await attachments.get(session, attachment_id)
    message = await repository.get_message(session, attachment.message_id)
    if message is None or (actor.is_external and not message.is_public):
        raise NotFound(f"Attachment {attachment_id} does not exist.")
    try:
        await get_ticket(session, actor, message.ticket_id)
    except NotFound:
        raise NotFound(f"Attachment {attachment_id} does not exist.") from None
    return attachment


async def count_for_customer(session: AsyncSession, customer_id: int) -> int:
    return await repository.count_for_customer(session, customer_id)


async def move_customer(session: AsyncSession, from_customer_id: int, to_customer_id: int) -> int:
    """For a customer merge (no permission check: the caller has checked its own): the
    tickets of one customer, and the messages they wrote, become the other's, each with a
    ``ticket.updated``. Returns how many tickets moved."""
    moved = await repository.move_customer(session, from_customer_id, to_customer_id)
    await events.emit_many(
        session,
        [
            _updated(ticket_id, number, "customer_id", from_customer_id, to_customer_id)
            for ticket_id, number in moved
        ],
    )
    return len(moved)


async def count_open_for_customer(session: AsyncSession, customer_id: int) -> int:
    """The customer's tickets not yet solved or closed."""
    return await repository.count_open_for_customer(session, customer_id)


ROUTABLE_FIELDS = frozenset(
    {
        "queue_id",
        "priority",
        "category",
        "tags",
        "custom_fields",
        "assignee_id",
        "team_id",
        "sla_policy_id",
        "status",
    }
)


async def apply_routing(
    session: AsyncSession, actor: Principal, ticket: Ticket, changes: dict[str, Any]
) -> None:
    """Set what routing rules decided (fields of ``ROUTABLE_FIELDS``, already checked by the
    routing service), audited as one change."""
    unknown = set(changes) - ROUTABLE_FIELDS
    if unknown:
        raise ValueError(f"not routable: {sorted(unknown)}")
    before = _snapshot(ticket)
    for field, value in changes.items():
        if field == "status":
            _apply_status(ticket, value)
        else:
            setattr(ticket, field, value)
    await session.flush()
    await _record_change(session, actor, "ticket.routed", ticket, before)


async def release_queue(session: AsyncSession, queue_id: int) -> list[int]:
    """Take the tickets out of a queue that is going away, each with a ``ticket.updated``;
    returns their ids."""
    released = await repository.release(session, Ticket.queue_id, queue_id)
    await events.emit_many(
        session,
        [
            _updated(ticket_id, number, "queue_id", queue_id, None)
            for ticket_id, number, _ in released
        ],
    )
    return [ticket_id for ticket_id, _, _ in released]


async def release_team(session: AsyncSession, team_id: int) -> list[int]:
    """Take the tickets off a team that is going away, each with a ``ticket.updated`` and a
    ``ticket.assigned`` (as any change of the team); returns their ids."""
    released = await repository.release(session, Ticket.team_id, team_id)
    emitted: list[EventData] = []
    for ticket_id, number, assignee_id in released:
        emitted.append(_updated(ticket_id, number, "team_id", team_id, None))
        emitted.append(
            TicketAssigned(
                ticket_id=ticket_id,
                number=number,
                assignee_id=assignee_id,
                team_id=None,
                previous_assignee_id=assignee_id,
                previous_team_id=team_id,
            )
        )
    await events.emit_many(session, emitted)
    return [ticket_id for ticket_id, _, _ in released]


async def tag_counts(
    session: AsyncSession, *, prefix: str | None, limit: int
) -> Sequence[Row[tuple[str, int]]]:
    return await repository.count_tags(session, prefix=prefix, limit=limit)


async def _emit_tag_changes(
    session: AsyncSession, changed: Sequence[tuple[int, int, list[str], list[str]]]
) -> int:
    await events.emit_many(
        session,
        [
            _updated(ticket_id, number, "tags", before, after)
            for ticket_id, number, before, after in changed
        ],
    )
    return len(changed)


async def remove_tag(session: AsyncSession, tag: str) -> int:
    """Remove the tag from every ticket, each with a ``ticket.updated``; how many had it."""
    return await _emit_tag_changes(session, await repository.remove_tag(session, tag))


async def rename_tag(session: AsyncSession, old: str, new: str) -> int:
    """Rename the tag on every ticket, each with a ``ticket.updated``; how many had it."""
    return await _emit_tag_changes(session, await repository.rename_tag(session, old, new))


async def emit_removed(
    session: AsyncSession, ticket_ids: Collection[int], *, deleted: bool, erased: str
) -> None:
    """Events for tickets their queue's retention handles (before it does): ``ticket.deleted``,
    or ``ticket.updated`` for an anonymised ticket, giving what its subject, tags and custom
    fields became but not what they were (personal data being the reason they go)."""
    numbers = await repository.numbers(session, ticket_ids)
    emitted: list[EventData] = []
    for ticket_id, number in sorted(numbers.items()):
        if deleted:
            emitted.append(TicketDeleted(ticket_id=ticket_id, number=number, reason="retention"))
            continue
        changes = {
            "subject": FieldChange(from_=None, to=erased),
            "tags": FieldChange(from_=None, to=[]),
            "custom_fields": FieldChange(from_=None, to={}),
        }
        emitted.append(TicketUpdated(ticket_id=ticket_id, number=number, changes=changes))
    await events.emit_many(session, emitted)


# --- Mail -----------------------------------------------------------------------------------


def _mail_message(ticket: Ticket, mail: MailMessage, customer_id: int) -> Message:
    return Message(
        ticket_id=ticket.id,
        direction=MessageDirection.inbound,
        # Bounces and auto-replies are kept, but as notes: not part of the conversation.
        is_public=mail.kind in CONVERSATION_KINDS,
        channel=Channel.email,
        author_customer_id=customer_id,
        from_address=mail.from_address,
        to_addresses=mail.to,
        cc_addresses=mail.cc,
        reply_to_addresses=mail.reply_to,
        subject=mail.subject[:SUBJECT_LIMIT],
        body_text=mail.body_text,
        body_html=mail.body_html,
        new_text=mail.new_text,
        message_id=mail.message_id,
        in_reply_to=mail.in_reply_to,
        references=mail.references,
        sent_at=mail.sent_at,
        kind=mail.kind,
        threaded_by=mail.threaded_by,
        threading_detail=mail.threading_detail,
        delivery=None,
    )


async def open_ticket_from_mail(
    session: AsyncSession,
    actor: Principal,
    mail: MailMessage,
    *,
    customer_id: int,
    queue_id: int | None,
    mailbox_id: int | None,
) -> tuple[Ticket, Message]:
    """A new ticket whose first message is the mail; replies go out through ``mailbox_id``."""
    default_priority = TicketPriority.normal
    if queue_id is not None:
        queue = await queues.find_queue(session, queue_id)
        default_priority = queue.default_priority if queue else default_priority
    ticket = Ticket(
        subject=mail.subject.strip()[:SUBJECT_LIMIT] or "(no subject)",
        status=TicketStatus.new,
        priority=default_priority,
        channel=Channel.email,
        queue_id=queue_id,
        mailbox_id=mailbox_id,
        customer_id=customer_id,
        tags=[],
        custom_fields={},
        last_customer_message_at=utcnow() if mail.kind in CONVERSATION_KINDS else None,
    )
    await _save_ticket(session, actor, ticket)
    message = _mail_message(ticket, mail, customer_id)
    message.attachments = await attachments.store_files(session, mail.attachments)
    await _save_message(session, actor, ticket, message)
    return ticket, message


async def add_mail(
    session: AsyncSession, actor: Principal, ticket_id: int, mail: MailMessage, *, customer_id: int
) -> Message:
    """The mail as the next message of the ticket; a customer's answer reopens it."""
    ticket = await get_ticket(session, actor, ticket_id, for_update=True)
    before = _snapshot(ticket)
    message = _mail_message(ticket, mail, customer_id)
    message.attachments = await attachments.store_files(session, mail.attachments)
    await _save_message(session, actor, ticket, message)
    if mail.kind in CONVERSATION_KINDS:
        _customer_wrote(ticket)
    ticket.touch()
    await session.flush()
    await _record_change(session, actor, "ticket.updated", ticket, before)
    return message


def _candidate(ticket: Ticket) -> ThreadCandidate:
    return ThreadCandidate(
        ticket.id,
        ticket.number,
        ticket.status,
        ticket.subject,
        ticket.customer_id,
        ticket.merged_into_id,
    )


async def _merge_target(session: AsyncSession, ticket: Ticket | None) -> Ticket | None:
    """The ticket, or the one it was merged into (and so on)."""
    seen: set[int] = set()
    while ticket is not None and ticket.merged_into_id is not None and ticket.id not in seen:
        seen.add(ticket.id)
        ticket = await repository.find(session, ticket_id=ticket.merged_into_id)
    return ticket


async def _follow_merges(session: AsyncSession, ticket: Ticket | None) -> ThreadCandidate | None:
    target = await _merge_target(session, ticket)
    return _candidate(target) if target is not None else None


async def thread_candidates(
    session: AsyncSession, message_ids: Sequence[str]
) -> dict[str, ThreadCandidate]:
    """Tickets holding a message (ours or theirs) with one of these Message-IDs, merges
    followed."""
    found = {}
    for header, ticket in await repository.tickets_by_message_ids(session, message_ids):
        candidate = await _follow_merges(session, ticket)
        if candidate is not None:
            found[header] = candidate
    return found


async def find_candidate(
    session: AsyncSession, *, ticket_id: int | None = None, number: int | None = None
) -> ThreadCandidate | None:
    """A ticket by id or human number, as threading sees it (merges followed)."""
    return await _follow_merges(
        session, await repository.find(session, ticket_id=ticket_id, number=number)
    )


async def link(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    other_ticket_id: int,
    kind: LinkKind,
    reason: str,
    *,
    state: LinkState = LinkState.open,
) -> TicketLink:
    ticket_link = TicketLink(
        ticket_id=ticket_id, other_ticket_id=other_ticket_id, kind=kind, reason=reason, state=state
    )
    session.add(ticket_link)
    await session.flush()
    await audit.record(
        session,
        actor,
        "ticket.linked",
        ENTITY,
        ticket_id,
        after={"other_ticket_id": other_ticket_id, "kind": kind.value, "reason": reason},
    )
    return ticket_link


async def list_links(session: AsyncSession, actor: Principal, ticket_id: int) -> list[TicketLink]:
    """The ticket's links; an external partner sees only those to tickets they may see."""
    await get_ticket(session, actor, ticket_id)
    links = await repository.links_of(session, ticket_id)
    if not actor.is_external:
        return links
    visible = []
    for ticket_link in links:
        other_id = (
            ticket_link.other_ticket_id
            if ticket_link.ticket_id == ticket_id
            else (ticket_link.ticket_id)
        )
        other = await repository.get(session, other_id)
        if other is not None and actor.can_see_queue(other.queue_id):
            visible.append(ticket_link)
    return visible


async def dismiss_link(
    session: AsyncSession, actor: Principal, ticket_id: int, link_id: int
) -> TicketLink:
    actor.require(AgentRole.agent)
    await get_ticket(session, actor, ticket_id)
    ticket_link = await repository.get_link(session, link_id)
    if ticket_link is None or ticket_id not in (ticket_link.ticket_id, ticket_link.other_ticket_id):
        raise NotFound(f"Ticket {ticket_id} has no link {link_id}.")
    if ticket_link.state is LinkState.open:
        ticket_link.state = LinkState.dismissed
        await session.flush()
        await audit.record(
            session, actor, "ticket.link_dismissed", ENTITY, ticket_id, after={"link_id": link_id}
        )
    return ticket_link


async def merge(
    session: AsyncSession, actor: Principal, ticket_id: int, into_ticket_id: int
) -> Ticket:
    """Move every message of the ticket into the other one and close it, pointing there."""
    actor.require(AgentRole.agent)
    if ticket_id == into_ticket_id:
        raise Invalid("A ticket cannot be merged into itself.", field="body.into_ticket_id")
    # Lock both in id order, so two merges of the same pair cannot deadlock.
    first, second = sorted((ticket_id, into_ticket_id))
    locked = {
        t.id: t
        for t in [
            await get_ticket(session, actor, first, for_update=True),
            await get_ticket(session, actor, second, for_update=True),
        ]
    }
    source, target = locked[ticket_id], locked[into_ticket_id]
    if source.merged_into_id is not None:
        raise Conflict(f"Ticket {ticket_id} was merged into {source.merged_into_id} already.")
    if target.merged_into_id is not None:
        raise Invalid(
            f"Ticket {into_ticket_id} was itself merged into {target.merged_into_id}: merge "
            "into that one.",
            field="body.into_ticket_id",
        )
    before_source, before_target = _snapshot(source), _snapshot(target)
    moved = await repository.move_messages(session, source.id, target.id)
    await repository.accept_links(session, source.id, target.id)
    source.merged_into_id = target.id
    _apply_status(source, TicketStatus.closed)
    target.tags = sorted(set(target.tags) | set(source.tags))
    target.touch()
    await session.flush()
    await link(
        session,
        actor,
        source.id,
        target.id,
        LinkKind.merged,
        f"merged by {actor.label}: {moved} message(s) moved",
        state=LinkState.accepted,
    )
    await _record_change(session, actor, "ticket.merged", source, before_source)
    await _record_change(session, actor, "ticket.updated", target, before_target)
    return target
