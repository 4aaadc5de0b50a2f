from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.agents.schemas import AgentPublicRead
from app.attachments.schemas import AttachmentRead, AttachmentUpload
from app.attachments.service import FileData
from app.core.pagination import Page
from app.core.types import EmailAddress, reject_null
from app.customers.schemas import CustomerRead
from app.followups.schemas import FollowUpRead
from app.outbound.models import DeliveryStatus, MailPurpose
from app.privacy.detectors import mask_text, mask_values
from app.privacy.schemas import FindingRead
from app.sla.schemas import SlaTargetLive
from app.tickets.models import (
    Channel,
    LinkKind,
    LinkState,
    MailKind,
    MessageDirection,
    ThreadMatch,
    TicketPriority,
    TicketStatus,
)

Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\s,]+$", examples=["vip"])]
Subject = Annotated[str, Field(min_length=1, max_length=998, examples=["Fakturaen er forkert"])]


class ApiChannel(StrEnum):
    """Channels a ticket can be created through the API with (mail arrives by ingestion)."""

    api = Channel.api.value
    web = Channel.web.value
    phone = Channel.phone.value


class CustomerRef(BaseModel):
    """The customer by id, or by email (found, or created when new)."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    email: EmailAddress | None = None
    name: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _one_key(self) -> CustomerRef:
        if self.id is None and self.email is None:
            raise ValueError("give the customer's id or email")
        return self


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body_text: str = Field(
        default="",
        max_length=1_000_000,
        description="Required unless `template_id` is given (the template fills it).",
    )
    body_html: str | None = Field(
        default=None,
        max_length=5_000_000,
        description="Optional HTML; sanitised. Without it the mail's HTML part is made from "
        "the text.",
    )
    public: bool = Field(
        default=True, description="A public reply the customer sees, or an internal note (false)."
    )
    direction: MessageDirection = Field(
        default=MessageDirection.outbound,
        description="`outbound`: an agent writes; `inbound`: record what the customer wrote.",
    )
    to: list[EmailAddress] | None = Field(
        default=None, description="Recipients of a reply; the customer's address when omitted."
    )
    cc: list[EmailAddress] = Field(default_factory=list, max_length=50)
    bcc: list[EmailAddress] = Field(
        default_factory=list,
        max_length=50,
        description="Blind copies of a reply: in the mail's envelope, never in its headers.",
    )
    template_id: int | None = Field(
        default=None,
        description="Write the message from this template, filled for the ticket "
        "(see POST /api/v1/templates/{id}/render).",
    )
    attachments: list[AttachmentUpload] = Field(default_factory=list, max_length=50)
    attachment_ids: list[int] = Field(
        default_factory=list,
        max_length=50,
        description="Attachments already stored (on this or another ticket you can see), "
        "sent again with this message.",
    )

    @model_validator(mode="after")
    def _notes_are_outbound(self) -> MessageCreate:
        if not self.public and self.direction is MessageDirection.inbound:
            raise ValueError("an internal note is written by an agent: direction must be outbound")
        if not self.body_text.strip() and self.template_id is None:
            raise ValueError("give body_text, or a template_id to write the message from")
        if self.direction is MessageDirection.inbound and (self.bcc or self.template_id):
            raise ValueError("bcc and template_id are for messages an agent writes")
        return self


class FirstMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body_text: str = Field(min_length=1, max_length=1_000_000)
    body_html: str | None = Field(default=None, max_length=5_000_000)
    attachments: list[AttachmentUpload] = Field(default_factory=list, max_length=50)


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    customer: CustomerRef
    message: FirstMessage = Field(description="What the customer wrote (the first message).")
    channel: ApiChannel = ApiChannel.api
    status: TicketStatus = TicketStatus.new
    priority: TicketPriority | None = Field(
        default=None, description="Defaults to the queue's default priority, else normal."
    )
    queue_id: int | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    category: str | None = Field(default=None, max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject | None = None
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    queue_id: int | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    category: str | None = Field(default=None, max_length=200)
    tags: list[Tag] | None = Field(default=None, max_length=100, description="Replaces the tags.")
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="Merged into the fields; a null value removes that field."
    )

    _not_null = field_validator("subject", "status", "priority", "tags")(reject_null)


class TicketSort(StrEnum):
    created_at = "created_at"
    created_at_desc = "-created_at"
    updated_at = "updated_at"
    updated_at_desc = "-updated_at"
    number = "number"
    number_desc = "-number"
    priority = "priority"
    priority_desc = "-priority"
    due_at = "due_at"
    """The earliest SLA due time first; tickets without one last."""


class SlaState(StrEnum):
    breached = "breached"
    """A running target is past its due time."""
    at_risk = "at_risk"
    """Not breached, but the earliest target has used its policy's at-risk share."""


class TicketFilters(BaseModel):
    """Filters of the ticket list; repeat a list parameter for several values (OR)."""

    status: list[TicketStatus] = Field(default_factory=list)
    priority: list[TicketPriority] = Field(default_factory=list)
    queue_id: int | None = None
    assignee_id: int | None = None
    unassigned: bool | None = None
    customer_id: int | None = None
    tag: list[str] = Field(default_factory=list, description="Tickets having all these tags.")
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_since: datetime | None = Field(
        default=None, description="For integrations: changed at or after this time."
    )
    updated_before: datetime | None = None
    sla: SlaState | None = Field(default=None, description="breached or at_risk tickets.")


class TicketRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: int = Field(description="The human ticket number, as in `[#100123]`.")
    subject: Annotated[
        str,
        AfterValidator(mask_text),
        Field(description="Identity, card and account numbers in it are masked."),
    ]
    status: TicketStatus
    priority: TicketPriority
    channel: Channel
    queue_id: int | None
    assignee_id: int | None
    team_id: int | None
    customer_id: int
    category: str | None
    tags: list[str]
    custom_fields: Annotated[
        dict[str, Any],
        AfterValidator(mask_values),
        Field(description="Identity, card and account numbers in text values are masked."),
    ]
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    solved_at: datetime | None
    closed_at: datetime | None
    merged_into_id: int | None = Field(
        description="Set when this ticket was merged into another; its messages moved there."
    )
    version: int
    sla: list[SlaTargetLive] = Field(
        default_factory=list,
        description="The SLA targets running now (on a single ticket and in lists); the "
        "history is at `/tickets/{id}/sla`.",
    )


class DeliveryRead(BaseModel):
    """How mailing a reply or acknowledgement goes."""

    model_config = ConfigDict(from_attributes=True)

    status: DeliveryStatus = Field(
        description="queued (waiting, or retrying after a temporary failure), sent, or failed."
    )
    purpose: MailPurpose
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a queued mail is tried next.")
    last_error: str | None = Field(description="Why the last attempt failed.")
    refused_recipients: dict[str, str] = Field(
        description="Recipients the server refused while taking the others, with its reply."
    )
    smtp_reply: str | None = Field(description="The SMTP server's answer when it took the mail.")
    sent_at: datetime | None
    failed_at: datetime | None

    @field_validator("next_attempt_at")
    @classmethod
    def _only_when_queued(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return value if info.data.get("status") is DeliveryStatus.queued else None


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    direction: MessageDirection
    public: bool = Field(validation_alias="is_public")
    channel: Channel
    author_agent_id: int | None
    author_customer_id: int | None
    from_address: str | None
    to: list[str] = Field(validation_alias="to_addresses")
    cc: list[str] = Field(validation_alias="cc_addresses")
    bcc: list[str] = Field(validation_alias="bcc_addresses")
    subject: str | None
    body_text: str
    body_html: str | None
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    reply_to: list[str] = Field(validation_alias="reply_to_addresses")
    sent_at: datetime | None = Field(description="The mail's Date header, if it came by mail.")
    new_text: str | None = Field(
        description="A mail's new text without quoted history and signature, when separable."
    )
    kind: MailKind = Field(description="normal, or an auto-reply, bounce, list mail...")
    threaded_by: ThreadMatch | None = Field(
        description="How an inbound mail found this ticket: token, in_reply_to, references, "
        "subject_number, new_ticket or follow_up."
    )
    threading_detail: str | None = Field(description="Which header or token matched.")
    template_id: int | None = Field(description="The template the message was written from.")
    created_at: datetime
    attachments: list[AttachmentRead]
    delivery: DeliveryRead | None = Field(
        description="For a message sent by mail: queued, sent or failed, attempts, last error."
    )
    findings: list[FindingRead] = Field(
        default_factory=list,
        description="Sensitive values (identity numbers, card numbers, IBANs, configured "
        "patterns), masked in the texts above for every role; "
        "POST /api/v1/messages/{id}/reveal shows them to those allowed.",
    )


class TicketWithMessages(TicketRead):
    messages: list[MessageRead]


@dataclass(frozen=True)
class MailMessage:
    """An inbound mail, parsed and threaded, ready to become a ticket message."""

    from_address: str | None
    subject: str
    body_text: str
    kind: MailKind
    threaded_by: ThreadMatch
    threading_detail: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    body_html: str | None = None
    new_text: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    sent_at: datetime | None = None
    attachments: list[FileData] = field(default_factory=list)


@dataclass(frozen=True)
class ThreadCandidate:
    """A ticket as threading sees it."""

    id: int
    number: int
    status: TicketStatus
    subject: str
    customer_id: int
    merged_into_id: int | None


class TicketLinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    other_ticket_id: int
    kind: LinkKind
    state: LinkState
    reason: str
    created_at: datetime


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into_ticket_id: int = Field(description="The ticket that receives the messages and stays.")


class TicketInclude(StrEnum):
    """Related records a ticket read can bring along (`include=customer,assignee`)."""

    customer = "customer"
    assignee = "assignee"
    messages = "messages"
    follow_up = "follow_up"


class Included(BaseModel):
    """The related records asked for with `include`, each once, by id; only the kinds asked
    for are present."""

    customers: dict[int, CustomerRead] = Field(default_factory=dict)
    agents: dict[int, AgentPublicRead] = Field(default_factory=dict)
    messages: dict[int, list[MessageRead]] = Field(
        default_factory=dict, description="By ticket id, oldest first."
    )
    follow_ups: dict[int, FollowUpRead] = Field(
        default_factory=dict,
        description="By ticket id: the current follow-up reminder, waiting or fired (until an "
        "agent clears it); tickets without one are left out.",
    )


class TicketPage(Page[TicketRead]):
    included: Included | None = Field(default=None, description="Present with `include`.")


class TicketReadIncluded(TicketRead):
    included: Included | None = Field(default=None, description="Present with `include`.")
