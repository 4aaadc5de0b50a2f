from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class AuditEvent(IdMixin, Base):
    """Who did what to which entity, when and from where; rows are never updated or deleted
    (a database trigger refuses both)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_entity_type_entity_id_id", "entity_type", "entity_id", "id"),
        Index("ix_audit_events_actor_agent_id_id", "actor_agent_id", "id"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
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
