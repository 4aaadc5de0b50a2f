from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class DeliveryStatus(StrEnum):
    queued = "queued"
    """Waiting for its first attempt or for a retry after a temporary failure."""
    sent = "sent"
    """The SMTP server accepted it."""
    failed = "failed"
    """Refused for good (5xx), or still failing after every retry."""


class MailPurpose(StrEnum):
    reply = "reply"
    acknowledgement = "acknowledgement"
    notification = "notification"
    """To agents about a ticket (a rule's or an escalation step's ``notify_email``): no
    message of the ticket, so the mail itself is kept on the row."""


class OutboundMail(IdMixin, Base):
    """A message to be mailed: written in the transaction that wrote the message, sent by a
    worker after commit, so a crash or restart can neither lose nor invent a mail."""

    __tablename__ = "outbound_mails"
    __table_args__ = (
        # What the workers look for: due mail still to send, oldest first.
        Index(
            "ix_outbound_mails_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'queued'"),
        ),
        # A mail is either a message of the ticket or a notification carrying its own content.
        CheckConstraint(
            "(message_id IS NULL) = (to_addresses IS NOT NULL AND subject IS NOT NULL"
            " AND body_text IS NOT NULL AND mail_message_id IS NOT NULL)",
            name="message_or_content",
        ),
    )

    message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("mailboxes.id", ondelete="SET NULL")
    )
    purpose: Mapped[MailPurpose] = mapped_column(Enum(MailPurpose, name="mail_purpose"))
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, name="delivery_status"), server_default=DeliveryStatus.queued.value
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    refused_recipients: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    """Recipients the server refused while taking the others: address -> SMTP reply."""
    smtp_reply: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    # A notification's mail (NULL for a message's, which the message holds).
    to_addresses: Mapped[list[str] | None] = mapped_column(ARRAY(String(320)))
    subject: Mapped[str | None] = mapped_column(String(998))
    body_text: Mapped[str | None] = mapped_column(Text)
    mail_message_id: Mapped[str | None] = mapped_column(String(998))
    """The Message-ID header, fixed when queued so a retry sends the same."""
