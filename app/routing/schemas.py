from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.types import EmailAddress
from app.privacy.detectors import mask_text
from app.routing.facts import Trigger
from app.routing.rules import RuleSetDefinition
from app.tickets.models import Channel, TicketPriority


class RuleSetRead(RuleSetDefinition):
    """The rules in force: their version (also the ETag) and who saved it when."""

    version: int = Field(description="0 while no rules were saved.")
    saved_at: datetime | None
    saved_by_agent_id: int | None
    comment: str | None


class RuleSetVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    saved_at: datetime
    saved_by_agent_id: int | None
    comment: str | None
    definition: dict[str, Any]


class SimulatedAttachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(max_length=500)
    content_type: str = Field(default="application/octet-stream", max_length=200)


class SimulatedMessage(BaseModel):
    """A message as the rules would see it: what a customer wrote, where to."""

    model_config = ConfigDict(extra="forbid")

    sender: EmailAddress = Field(examples=["soren@example.dk"])
    to: list[EmailAddress] = Field(default_factory=list, examples=[["faktura@firma.dk"]])
    cc: list[EmailAddress] = Field(default_factory=list)
    subject: str = Field(default="", max_length=998, examples=["Fakturaen er forkert"])
    body: str = Field(default="", max_length=1_000_000)
    channel: Channel = Channel.email
    attachments: list[SimulatedAttachment] = Field(default_factory=list)
    form: dict[str, Any] = Field(default_factory=dict, description="Web-form fields.")


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: SimulatedMessage | None = Field(
        default=None, description="The message to route; give it, or `ticket_id`, or both."
    )
    ticket_id: int | None = Field(
        default=None,
        description="Route an existing ticket (its fields, customer and first message) as if "
        "it were new; with `message`, the message replaces its first message.",
    )
    trigger: Trigger = Trigger.ticket_created
    rule_set: RuleSetDefinition | None = Field(
        default=None, description="A draft rule set to try; the rules in force when omitted."
    )
    at: datetime | None = Field(
        default=None, description="The moment to route at (business hours); now when omitted."
    )


class RuleOutcome(BaseModel):
    rule_id: str
    name: str
    matched: bool | None = Field(description="null: not evaluated (disabled, other trigger).")
    why: Annotated[
        str,
        # The stored facts keep the text the rules saw; only the answer is masked.
        AfterValidator(mask_text),
        Field(description="Identity, card and account numbers quoted in it are masked."),
    ]


class AppliedAction(BaseModel):
    rule_id: str | None
    action: dict[str, Any]
    outcome: str = Field(description="What applying it did, or why it was skipped.")


class SimulationRead(BaseModel):
    rule_set_version: int | None = Field(description="null for a draft rule set.")
    rules: list[RuleOutcome]
    applied: list[AppliedAction] = Field(
        description="What would be done; assignments are worked out but not kept."
    )
    queue_id: int | None
    priority: TicketPriority | None
    assignee_id: int | None


class RoutingTraceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: Trigger
    message_id: int | None
    rule_set_version: int | None
    rules: list[RuleOutcome]
    applied: list[AppliedAction]
    created_at: datetime


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_set: RuleSetDefinition
    created_after: datetime
    created_before: datetime | None = None
    limit: int = Field(default=2000, ge=1, le=20_000, description="Tickets replayed at most.")


class ReplayChange(BaseModel):
    ticket_id: int
    number: int
    subject: Annotated[
        str,
        AfterValidator(mask_text),
        Field(description="Identity, card and account numbers in it are masked."),
    ]
    field: str = Field(examples=["queue_id"])
    now: Any = Field(description="The ticket's value today.")
    would_be: Any = Field(description="What the draft rules would have set.")


class ReplayRead(BaseModel):
    tickets: int = Field(description="Tickets replayed.")
    changed: dict[str, int] = Field(
        description="How many tickets would get another queue_id, priority or assignee_id."
    )
    assigned_by_strategy: int = Field(
        description="Tickets the draft would assign by a strategy: who depends on the load at "
        "the time, so these are counted, not compared."
    )
    examples: list[ReplayChange] = Field(description="Up to 10 examples of each change.")
