from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.agents.schemas import SkillLevel
from app.core.types import Description, EmailAddress, reject_null, unique_in_order
from app.queues.models import CustomerFields, RetentionAction
from app.tickets.models import TicketPriority

QueueName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Kundeservice Århus"]),
]
SkillName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


InboundAddresses = Annotated[
    list[EmailAddress],
    Field(
        max_length=100,
        description="Mail to these addresses lands in this queue; an address belongs to one "
        "queue only.",
        examples=[["støtte@example.dk"]],
    ),
    AfterValidator(unique_in_order),
]
RequiredSkills = Annotated[
    dict[SkillName, SkillLevel],
    Field(description="Skill name to the level 1-5 an agent needs.", examples=[{"billing": 3}]),
]
_MAILBOX = (
    "The mailbox this queue's tickets are answered from when they did not come by mail; null: "
    "none of its own."
)
_ACKNOWLEDGE = (
    "Answer each new ticket of this queue with an acknowledgement; null: as the mailbox it came "
    "through says (tickets that did not come by mail get none)."
)
_ACKNOWLEDGEMENT_TEMPLATE = "The template of the acknowledgement; null: the mailbox's."
_SLA_POLICY = "The SLA policy of this queue's tickets unless a routing rule sets one; null: none."
_RETENTION_MONTHS = (
    "Closed tickets of this queue older than this many months are anonymised or deleted by the "
    "retention pass (see `GET /retention/preview`); null: kept."
)
_RETENTION_ACTION = (
    "`anonymise`: keep the ticket as a statistics row without content; `delete`: remove it."
)
RetentionMonths = Annotated[int, Field(ge=1, le=1200)]


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: QueueName
    description: Description | None = None
    inbound_addresses: InboundAddresses = Field(default_factory=list)
    default_priority: TicketPriority = TicketPriority.normal
    required_skills: RequiredSkills = Field(default_factory=dict)
    team_id: int | None = None
    mailbox_id: int | None = Field(default=None, description=_MAILBOX)
    acknowledge: bool | None = Field(default=None, description=_ACKNOWLEDGE)
    acknowledgement_template_id: int | None = Field(
        default=None, description=_ACKNOWLEDGEMENT_TEMPLATE
    )
    sla_policy_id: int | None = Field(default=None, description=_SLA_POLICY)
    retention_months: RetentionMonths | None = Field(default=None, description=_RETENTION_MONTHS)
    retention_action: RetentionAction = Field(
        default=RetentionAction.anonymise, description=_RETENTION_ACTION
    )


class QueueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: QueueName | None = None
    description: Description | None = Field(default=None, description="null clears it.")
    inbound_addresses: InboundAddresses | None = Field(default=None, description="Replaces them.")
    default_priority: TicketPriority | None = None
    required_skills: RequiredSkills | None = Field(default=None, description="Replaces them.")
    team_id: int | None = Field(default=None, description="null detaches the queue from its team.")
    mailbox_id: int | None = Field(default=None, description=_MAILBOX)
    acknowledge: bool | None = Field(default=None, description=_ACKNOWLEDGE)
    acknowledgement_template_id: int | None = Field(
        default=None, description=_ACKNOWLEDGEMENT_TEMPLATE
    )
    sla_policy_id: int | None = Field(default=None, description=_SLA_POLICY)
    retention_months: RetentionMonths | None = Field(default=None, description=_RETENTION_MONTHS)
    retention_action: RetentionAction | None = Field(default=None, description=_RETENTION_ACTION)

    _not_null = field_validator(
        "name", "inbound_addresses", "default_priority", "required_skills", "retention_action"
    )(reject_null)


class GrantSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_fields: CustomerFields = Field(
        default=CustomerFields.none,
        description="What the partner sees of the customers of this queue's tickets: `none`, "
        "`name`, or `name_and_email` (also the addresses on messages). Nothing else of a "
        "customer, and never another ticket of theirs.",
    )


class QueueRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    inbound_addresses: list[str]
    default_priority: TicketPriority
    required_skills: dict[str, int]
    team_id: int | None
    mailbox_id: int | None
    acknowledge: bool | None
    acknowledgement_template_id: int | None
    sla_policy_id: int | None = Field(description=_SLA_POLICY)
    retention_months: int | None = Field(description=_RETENTION_MONTHS)
    retention_action: RetentionAction = Field(description=_RETENTION_ACTION)
    created_at: datetime
    updated_at: datetime
    version: int
