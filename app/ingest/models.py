from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin
from app.tickets.models import MailKind


class InboundStatus(StrEnum):
    received = "received"
    """Stored raw, not yet turned into a ticket message."""
    processed = "processed"
    duplicate = "duplicate"
    """The same mail came before (another mailbox, a re-delivery): it joined that message."""
    quarantined = "quarantined"
    """Could not be processed; kept raw with the reason, and can be retried."""


class InboundMail(IdMixin, Base):
    """Every mail received, raw, before anything else happens to it: nothing is lost."""

    __tablename__ = "inbound_mails"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "folder", "uidvalidity", "uid"),
        Index("ix_inbound_mails_status_id", "status", "id"),
        Index("ix_inbound_mails_sender_received_at", "sender", "received_at"),
        Index(
            "ix_inbound_mails_message_id_header_content_hash", "message_id_header", "content_hash"
        ),
    )

    source: Mapped[str] = mapped_column(String(20))
    mailbox_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("mailboxes.id", ondelete="SET NULL")
    )
    folder: Mapped[str | None] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    raw_sha256: Mapped[str] = mapped_column(
        String(64), ForeignKey("blobs.sha256", ondelete="RESTRICT"), index=True
    )
    size: Mapped[int] = mapped_column(Integer)
    message_id_header: Mapped[str | None] = mapped_column(String(998))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[InboundStatus] = mapped_column(Enum(InboundStatus, name="inbound_status"))
    kind: Mapped[MailKind | None] = mapped_column(Enum(MailKind, name="mail_kind"))
    auto_reply_allowed: Mapped[bool | None]
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    ticket_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="SET NULL")
    )
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]
    handled_on_server_at: Mapped[datetime | None]
    """When the IMAP server was told (flagged, moved, deleted); NULL: still to do."""
