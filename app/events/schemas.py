"""The event types: one pydantic model per type is the documented schema of its ``data``.

A model names its type, the kind of entity it is about and the field holding that entity's
id. Every ``data`` carries ``schema_version``; a change a consumer could trip over (a field
removed, renamed or retyped) gets a new version, adding an optional field does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.models import BulkJobKind, BulkJobState
from app.outbound.models import MailPurpose
from app.sla.models import SlaMetric
from app.tickets.models import Channel, MessageDirection, TicketPriority, TicketStatus

# Fields that change with every write: never a change worth an event on their own.
_BOOKKEEPING = frozenset({"version", "updated_at"})


class EventData(BaseModel):
    """The ``data`` of an event."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type_name: ClassVar[str]
    entity: ClassVar[str]
    entity_field: ClassVar[str]
    """The field holding the id of the entity the event is about."""

    schema_version: Literal[1] = Field(1, description="The version of this type's schema.")

    @property
    def entity_id(self) -> int | None:
        value: int | None = getattr(self, self.entity_field)
        return value

    @classmethod
    def version(cls) -> int:
        version: int = cls.model_fields["schema_version"].default
        return version


class FieldChange(BaseModel):
    """One field's value before and after, as the API shows it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: Any = Field(alias="from")
    to: Any


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, FieldChange]:
    """The changed fields of an entity, from the audit log's before and after (only the
    fields that changed), without the bookkeeping that changes with every write."""
    return {
        name: FieldChange(from_=before.get(name), to=value)
        for name, value in after.items()
        if name not in _BOOKKEEPING
    }


class _TicketEvent(EventData):
    entity = "ticket"
    entity_field = "ticket_id"

    ticket_id: int
    number: int = Field(description="The human ticket number.")


class TicketCreated(_TicketEvent):
    """A ticket was opened (through the API or by an incoming mail)."""

    type_name = "ticket.created"

    subject: str
    status: TicketStatus
    priority: TicketPriority
    channel: Channel
    queue_id: int | None
    assignee_id: int | None
    team_id: int | None
    customer_id: int


class TicketUpdated(_TicketEvent):
    """Fields of a ticket changed (by an agent, a routing rule, a message, a merge)."""

    type_name = "ticket.updated"

    changes: dict[str, FieldChange] = Field(
        description="Each changed field with its value before (`from`) and after (`to`)."
    )


class TicketDeleted(_TicketEvent):
    """A ticket was deleted, with its messages (by its queue's retention period)."""

    type_name = "ticket.deleted"

    reason: Literal["retention"] = Field(description="Why it was deleted.")


class TicketAssigned(_TicketEvent):
    """The ticket's assignee or team changed."""

    type_name = "ticket.assigned"

    assignee_id: int | None
    team_id: int | None
    previous_assignee_id: int | None
    previous_team_id: int | None


class TicketStatusChanged(_TicketEvent):
    """The ticket's status changed."""

    type_name = "ticket.status_changed"

    status: TicketStatus
    previous_status: TicketStatus


class TicketFollowUpDue(_TicketEvent):
    """A follow-up reminder came due: a pending ticket is open again for the agent."""

    type_name = "ticket.follow_up_due"

    follow_up_id: int
    due_at: datetime
    note: str
    agent_id: int | None = Field(description="The agent the reminder is for.")
    reopened: bool = Field(
        description="The ticket was pending and is open again; false when it was already "
        "open (the customer wrote in the meantime) or solved."
    )


class TicketSlaBreached(_TicketEvent):
    """A running SLA target of the ticket passed its due time unmet."""

    type_name = "ticket.sla_breached"

    metric: SlaMetric
    due_at: datetime
    breached_at: datetime
    policy_id: int | None


class TicketEscalated(_TicketEvent):
    """An escalation step of the ticket's SLA policy fired for one of its targets."""

    type_name = "ticket.escalated"

    metric: SlaMetric
    step: int = Field(description="The step's place in the policy's list, from 0.")
    at_percent: int = Field(description="The share of the target's time the step fires at.")
    actions: list[dict[str, Any]] = Field(
        description="Each action of the step and what it did (as in a routing trace)."
    )


class MessageCreated(EventData):
    """A message was added to a ticket: ids only, never its text."""

    type_name = "message.created"
    entity = "message"
    entity_field = "message_id"

    message_id: int
    ticket_id: int
    ticket_number: int
    direction: MessageDirection = Field(description="`inbound`: from the customer's side.")
    public: bool = Field(description="False for an internal note.")
    author_agent_id: int | None
    author_customer_id: int | None


class _CustomerEvent(EventData):
    # Ids and field names only: events may outlive a customer who asked to be forgotten.
    entity = "customer"
    entity_field = "customer_id"

    customer_id: int


class CustomerCreated(_CustomerEvent):
    """A customer was created (by an agent, or for the sender of a new ticket)."""

    type_name = "customer.created"

    organisation_id: int | None


class CustomerUpdated(_CustomerEvent):
    """Fields of a customer changed; read the customer for the new values."""

    type_name = "customer.updated"

    fields: list[str] = Field(description="The names of the changed fields.")


class CustomerMerged(_CustomerEvent):
    """A customer was merged into another (`customer_id`, which stays) and deleted: their
    tickets, addresses and external ids are now the other's."""

    type_name = "customer.merged"

    merged_customer_id: int = Field(description="The customer merged away (deleted).")
    tickets_moved: int


class CustomerErased(_CustomerEvent):
    """A customer was erased on their request (GDPR Art. 17): their messages, files and raw
    mail are gone, their tickets kept as anonymous statistics. Forget what you hold of them."""

    type_name = "customer.erased"

    erased: dict[str, int] = Field(description="Rows erased or anonymised, per table.")


class CustomerDeleted(_CustomerEvent):
    """A customer without tickets was deleted."""

    type_name = "customer.deleted"


class _OrganisationEvent(EventData):
    # Ids and field names only, as for customers: attributes may name people.
    entity = "organisation"
    entity_field = "organisation_id"

    organisation_id: int


class OrganisationCreated(_OrganisationEvent):
    """An organisation was created."""

    type_name = "organisation.created"


class OrganisationUpdated(_OrganisationEvent):
    """Fields of an organisation changed; read the organisation for the new values."""

    type_name = "organisation.updated"

    fields: list[str] = Field(description="The names of the changed fields.")


class OrganisationDeleted(_OrganisationEvent):
    """An organisation was deleted; its customers stay, without an organisation (each gets a
    `customer.updated`)."""

    type_name = "organisation.deleted"

    customers_unlinked: int


class MailQuarantined(EventData):
    """An incoming mail could not be processed and was set aside; it can be retried."""

    type_name = "mail.quarantined"
    entity = "inbound_mail"
    entity_field = "inbound_id"

    inbound_id: int
    mailbox_id: int | None
    reason: str


class OutboundFailed(EventData):
    """Mailing a message failed for good (a permanent refusal, or too many attempts)."""

    type_name = "outbound.failed"
    entity = "message"
    entity_field = "message_id"

    message_id: int
    ticket_id: int
    purpose: MailPurpose
    attempts: int
    permanent: bool
    reason: str


class RoutingNotify(EventData):
    """A routing rule's `notify` action fired."""

    type_name = "routing.notify"
    entity = "ticket"
    entity_field = "ticket_id"

    ticket_id: int
    event: str = Field(description="The name the rule gave the notification.")
    note: str | None


class WebhookDisabled(EventData):
    """A webhook was switched off because its deliveries kept failing."""

    type_name = "webhook.disabled"
    entity = "webhook"
    entity_field = "webhook_id"

    webhook_id: int
    url: str
    failing_since: datetime = Field(description="The first failure of the streak.")
    reason: str


class BulkJobFinished(EventData):
    """A bulk job ended: every ticket was worked on, or it was cancelled or could not go on."""

    type_name = "bulk_job.finished"
    entity = "bulk_job"
    entity_field = "job_id"

    job_id: int
    kind: BulkJobKind
    state: BulkJobState
    requester_agent_id: int | None
    total: int
    succeeded: int
    unchanged: int
    failed: int


EVENT_TYPES: dict[str, type[EventData]] = {
    model.type_name: model
    for model in (
        TicketCreated,
        TicketUpdated,
        TicketDeleted,
        TicketAssigned,
        TicketStatusChanged,
        TicketSlaBreached,
        TicketEscalated,
        TicketFollowUpDue,
        MessageCreated,
        CustomerCreated,
        CustomerUpdated,
        CustomerMerged,
        CustomerErased,
        CustomerDeleted,
        OrganisationCreated,
        OrganisationUpdated,
        OrganisationDeleted,
        MailQuarantined,
        OutboundFailed,
        RoutingNotify,
        WebhookDisabled,
        BulkJobFinished,
    )
}


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    entity: str
    entity_id: int | None
    data: dict[str, Any]
    occurred_at: datetime


class EventPage(BaseModel):
    """Events oldest first; poll again with ``next_cursor``, which is never null."""

    items: list[EventRead]
    next_cursor: str = Field(
        description="The position after the last item (the cursor passed in when nothing is "
        "new): pass it as `after` to continue."
    )


class EventTypeRead(BaseModel):
    type: str
    version: int
    description: str
    json_schema: dict[str, Any] = Field(description="The JSON schema of the event's `data`.")
