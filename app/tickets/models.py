from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Enum,
    ForeignKey,
    Index,
    Sequence,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.attachments.models import Attachment
from app.db.base import Base, ChangeTxidMixin, IdMixin, TimestampMixin, VersionedMixin
from app.outbound.models import OutboundMail


class TicketStatus(StrEnum):
    new = "new"
    open = "open"
    pending = "pending"
    on_hold = "on_hold"
    solved = "solved"
    closed = "closed"


class TicketPriority(StrEnum):
    """Declared from lowest to highest: PostgreSQL sorts the enum in this order."""

    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Channel(StrEnum):
    email = "email"
    web = "web"
    api = "api"
    phone = "phone"


class MessageDirection(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class MailKind(StrEnum):
    """What an inbound mail is; anything but ``normal`` never gets an automatic answer."""

    normal = "normal"
    auto_reply = "auto_reply"
    """Out-of-office and other answers written by a machine (Auto-Submitted, Precedence...)."""
    bounce = "bounce"
    """A delivery status notification: one of our mails did not arrive."""
    mailing_list = "mailing_list"
    own = "own"
    """Our own outgoing mail, come back (a loop)."""


CONVERSATION_KINDS = frozenset({MailKind.normal, MailKind.mailing_list})
"""Mail that is part of the conversation: written by people, not answered by machines."""


class ThreadMatch(StrEnum):
    """How an inbound mail found its ticket, so "why did this land here" has an answer."""

    token = "token"  # noqa: S105 - a threading method, not a secret
    """Our signed Message-ID token in In-Reply-To/References: certain."""
    in_reply_to = "in_reply_to"
    references = "references"
    subject_number = "subject_number"
    new_ticket = "new_ticket"
    follow_up = "follow_up"
    """A reply to a closed ticket, made a new ticket linked to it."""


class LinkKind(StrEnum):
    possible_thread = "possible_thread"
    """A weak threading match: a new ticket that may belong to the other one."""
    follow_up = "follow_up"
    merged = "merged"


class LinkState(StrEnum):
    open = "open"
    accepted = "accepted"
    dismissed = "dismissed"


TICKET_NUMBER_SEQUENCE = Sequence("ticket_number_seq", start=100000)
"""Human ticket numbers: short, increasing, never reused, and unrelated to the row id."""


NO_DUE_AT = datetime(9999, 1, 1, tzinfo=UTC)
"""The due time of a ticket without one, when tickets are ordered by due time."""


STATUS_TOKEN_DEFAULT = text(
    "replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')"
)
"""244 random bits, made by the database so that every way a ticket is created gets one."""


class Ticket(IdMixin, TimestampMixin, VersionedMixin, ChangeTxidMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_created_at_id", "created_at", "id"),
        Index("ix_tickets_updated_at_id", "updated_at", "id"),
        Index("ix_tickets_status_created_at_id", "status", "created_at", "id"),
        Index("ix_tickets_queue_id_created_at_id", "queue_id", "created_at", "id"),
        # The views agents work from: a queue's or their own tickets in one status, newest first.
        Index("ix_tickets_queue_id_status_created_at_id", "queue_id", "status", "created_at", "id"),
        Index("ix_tickets_assignee_id_created_at_id", "assignee_id", "created_at", "id"),
        Index(
            "ix_tickets_assignee_id_status_created_at_id",
            "assignee_id",
            "status",
            "created_at",
            "id",
        ),
        Index("ix_tickets_customer_id_created_at_id", "customer_id", "created_at", "id"),
        Index("ix_tickets_tags", "tags", postgresql_using="gin"),
        Index("ix_tickets_change_txid_id", "change_txid", "id"),
        Index("ix_tickets_sla_due_order_id", "sla_due_order", "id"),
    )

    number: Mapped[int] = mapped_column(
        BigInteger,
        TICKET_NUMBER_SEQUENCE,
        server_default=TICKET_NUMBER_SEQUENCE.next_value(),
        unique=True,
    )
    subject: Mapped[str] = mapped_column(String(998))
    status: Mapped[TicketStatus] = mapped_column(Enum(TicketStatus, name="ticket_status"))
    priority: Mapped[TicketPriority] = mapped_column(Enum(TicketPriority, name="ticket_priority"))
    channel: Mapped[Channel] = mapped_column(Enum(Channel, name="channel"))
    queue_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("queues.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    team_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="RESTRICT")
    )
    category: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), server_default=text("'{}'"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    customer_withheld: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """An outside partner opened the ticket for the address of a customer already known: the
    ticket is that customer's, but outside partners are not shown the record (it was not
    theirs to learn)."""
    first_response_at: Mapped[datetime | None]
    solved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    merged_into_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="SET NULL")
    )
    mailbox_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("mailboxes.id", ondelete="SET NULL")
    )
    """The mailbox the ticket came in through, which its replies are sent from."""
    sla_policy_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sla_policies.id", ondelete="SET NULL"), index=True
    )
    status_token: Mapped[str] = mapped_column(
        String(64), unique=True, server_default=STATUS_TOKEN_DEFAULT
    )
    """The unguessable key of the customer's status page."""
    # Kept by the SLA domain from the ticket's running targets, for fast lists.
    sla_due_at: Mapped[datetime | None]
    """The earliest due time of the ticket's running SLA targets."""
    sla_at_risk_at: Mapped[datetime | None]
    """When that earliest target becomes at risk."""
    sla_breached: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """A running target is past its due time."""
    sla_due_order: Mapped[datetime] = mapped_column(
        Computed(f"COALESCE(sla_due_at, '{NO_DUE_AT.isoformat()}'::timestamptz)", persisted=True)
    )
    """``sla_due_at``, or a far future for tickets without one: a key that keyset pagination
    can order by, which puts them last."""
    status_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_customer_message_at: Mapped[datetime | None]
    """The customer's latest message of the conversation (no auto-replies or bounces)."""
    last_agent_reply_at: Mapped[datetime | None]
    """The latest public reply an agent wrote (automatic answers do not count)."""


class Message(IdMixin, ChangeTxidMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_ticket_id_created_at_id", "ticket_id", "created_at", "id"),
        Index("ix_messages_change_txid_id", "change_txid", "id"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[MessageDirection] = mapped_column(
        Enum(MessageDirection, name="message_direction")
    )
    is_public: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[Channel] = mapped_column(Enum(Channel, name="channel"))
    author_agent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    author_customer_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="SET NULL")
    )
    from_address: Mapped[str | None] = mapped_column(String(320))
    to_addresses: Mapped[list[str]] = mapped_column(ARRAY(String(320)), server_default=text("'{}'"))
    cc_addresses: Mapped[list[str]] = mapped_column(ARRAY(String(320)), server_default=text("'{}'"))
    bcc_addresses: Mapped[list[str]] = mapped_column(
        ARRAY(String(320)), server_default=text("'{}'")
    )
    template_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="SET NULL")
    )
    """The template a reply was written from."""
    subject: Mapped[str | None] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(ARRAY(String(998)), server_default=text("'{}'"))
    reply_to_addresses: Mapped[list[str]] = mapped_column(
        ARRAY(String(320)), server_default=text("'{}'")
    )
    sent_at: Mapped[datetime | None]
    """The Date header of a mail: when the sender says it was written."""
    new_text: Mapped[str | None] = mapped_column(Text)
    """The new part of a mail, without quoted history and signature, when that could be told."""
    kind: Mapped[MailKind] = mapped_column(
        Enum(MailKind, name="mail_kind"), server_default=MailKind.normal.value
    )
    threaded_by: Mapped[ThreadMatch | None] = mapped_column(Enum(ThreadMatch, name="thread_match"))
    threading_detail: Mapped[str | None] = mapped_column(Text)
    """Which header value or token matched, in words."""
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    attachments: Mapped[list[Attachment]] = relationship(lazy="raise", order_by=Attachment.id)
    delivery: Mapped[OutboundMail | None] = relationship(lazy="raise", viewonly=True)
    """How mailing this message goes, for a reply or acknowledgement sent by mail."""


class TicketLink(IdMixin, Base):
    """A relation between two tickets: a suggested thread, a follow-up, a merge."""

    __tablename__ = "ticket_links"
    __table_args__ = (Index("ix_ticket_links_other_ticket_id", "other_ticket_id"),)

    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    other_ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE")
    )
    kind: Mapped[LinkKind] = mapped_column(Enum(LinkKind, name="link_kind"))
    state: Mapped[LinkState] = mapped_column(
        Enum(LinkState, name="link_state"), server_default=LinkState.open.value
    )
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
