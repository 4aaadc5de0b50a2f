from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class ImapSecurity(StrEnum):
    tls = "tls"
    """Implicit TLS (port 993)."""
    starttls = "starttls"
    none = "none"
    """Plain text: only for a server on loopback."""


class SmtpSecurity(StrEnum):
    tls = "tls"
    """Implicit TLS (port 465)."""
    starttls = "starttls"
    """STARTTLS, required (port 587)."""
    none = "none"
    """Plain text: only for a relay on loopback."""


class MailboxAuth(StrEnum):
    password = "password"  # noqa: S105 - a way to log in, not a secret
    xoauth2 = "xoauth2"
    """OAuth 2 bearer token (Microsoft 365, Gmail), refreshed with a stored refresh token."""


class AfterImport(StrEnum):
    """What the server is told once a mail is safely stored as a ticket message."""

    mark_seen = "mark_seen"
    move = "move"
    delete = "delete"


class MailboxState(StrEnum):
    new = "new"
    ok = "ok"
    failing = "failing"


class Mailbox(IdMixin, TimestampMixin, VersionedMixin, Base):
    """An IMAP mailbox the service reads; secrets are stored encrypted with the secret key."""

    __tablename__ = "mailboxes"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    imap_host: Mapped[str] = mapped_column(String(253))
    imap_port: Mapped[int] = mapped_column(Integer)
    imap_security: Mapped[ImapSecurity] = mapped_column(Enum(ImapSecurity, name="imap_security"))
    username: Mapped[str] = mapped_column(String(320))
    auth_method: Mapped[MailboxAuth] = mapped_column(Enum(MailboxAuth, name="mailbox_auth"))
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_access_token_expires_at: Mapped[datetime | None]
    oauth_refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_token_url: Mapped[str | None] = mapped_column(String(2000))
    oauth_client_id: Mapped[str | None] = mapped_column(String(500))
    oauth_client_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_scope: Mapped[str | None] = mapped_column(String(1000))
    folders: Mapped[list[str]] = mapped_column(ARRAY(String(500)), server_default=text("'{INBOX}'"))
    after_import: Mapped[AfterImport] = mapped_column(
        Enum(AfterImport, name="after_import"), server_default=AfterImport.mark_seen.value
    )
    move_to_folder: Mapped[str | None] = mapped_column(String(500))
    default_queue_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("queues.id", ondelete="SET NULL")
    )
    addresses: Mapped[list[str]] = mapped_column(ARRAY(String(320)), server_default=text("'{}'"))
    poll_interval_seconds: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    smtp_host: Mapped[str | None] = mapped_column(String(253))
    """Where replies from this mailbox are sent; NULL: the mailbox only receives."""
    smtp_port: Mapped[int | None] = mapped_column(Integer)
    smtp_security: Mapped[SmtpSecurity] = mapped_column(
        Enum(SmtpSecurity, name="smtp_security"), server_default=SmtpSecurity.starttls.value
    )
    smtp_username: Mapped[str | None] = mapped_column(String(320))
    """NULL: the IMAP login (and its password or OAuth token) is used."""
    smtp_password_encrypted: Mapped[str | None] = mapped_column(Text)
    from_name: Mapped[str | None] = mapped_column(String(200))
    from_address: Mapped[str | None] = mapped_column(String(320))
    """NULL: the first of the mailbox's addresses."""
    acknowledge: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    """Answer each new ticket from this mailbox with an acknowledgement."""
    acknowledgement_template_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="SET NULL")
    )


class MailboxStatus(Base):
    """How reading a mailbox goes; written by the reader, so it does not touch the version."""

    __tablename__ = "mailbox_status"

    mailbox_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[MailboxState] = mapped_column(
        Enum(MailboxState, name="mailbox_state"), server_default=MailboxState.new.value
    )
    reader: Mapped[str | None] = mapped_column(String(200))
    last_success_at: Mapped[datetime | None]
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class MailboxFolder(Base):
    """Where reading a folder stands: its UIDVALIDITY and the last UID stored."""

    __tablename__ = "mailbox_folders"

    mailbox_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True
    )
    folder: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
