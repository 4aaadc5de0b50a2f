from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class AuditEvent(IdMixin, Base):
    """Who did what to which entity, when and from where; rows are never updated or deleted
    (a database trigger refuses both).

    ``txid`` is the writing transaction's id, as on ``events``: the sealer chains rows in
    ``(txid, id)`` order once their transactions have ended (see ``app.audit.chain``)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_entity_type_entity_id_id", "entity_type", "entity_id", "id"),
        Index("ix_audit_events_actor_agent_id_id", "actor_agent_id", "id"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_txid_id", "txid", "id"),
    )

    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_agent_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_label: Mapped[str] = mapped_column(String(320))
    actor_token_id: Mapped[int | None] = mapped_column(BigInteger)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class AuditChainLink(Base):
    """One sealed audit event: its place in the chain and the hash that binds it to every
    event before it. Append-only like the events (the same trigger refuses UPDATE, DELETE
    and TRUNCATE)."""

    __tablename__ = "audit_chain"

    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    event_txid: Mapped[int] = mapped_column(BigInteger)
    content_digest: Mapped[str] = mapped_column(String(64))
    """``sha256`` of the event's canonical content when it was sealed."""
    hash: Mapped[str] = mapped_column(String(64))
    """``sha256(previous link's hash + content_digest)``."""
    sealed_at: Mapped[datetime]


class AuditRedaction(IdMixin, Base):
    """An audit event whose personal content was replaced (a data subject's erasure, a
    retention pass), and the digest of what it holds since. Append-only like the log.

    ``redacted_by_event_id`` is the audit event that did it: it records how many events it
    redacted and a digest over their ``(event_id, redacted_digest)`` pairs, and is itself
    sealed into the chain, so ``verify`` accepts a redacted event only when a sealed event
    vouches for exactly this redaction (see ``app.audit.chain``)."""

    __tablename__ = "audit_redactions"

    # No foreign keys: audit events are never deleted, and the audit tables stay truncatable
    # together by someone with full rights (the chain then shows it).
    event_id: Mapped[int] = mapped_column(BigInteger, index=True)
    """Several redactions of one event chain up: each starts from the digest the previous one
    left (a person erased, then another mentioned in the same event)."""
    redacted_by_event_id: Mapped[int] = mapped_column(BigInteger, index=True)
    previous_digest: Mapped[str] = mapped_column(String(64))
    """The digest of the event's content before this redaction."""
    redacted_digest: Mapped[str] = mapped_column(String(64))
    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    """The writing transaction: the database lets the event change only in that one."""
    redacted_at: Mapped[datetime] = mapped_column(server_default=func.now())
