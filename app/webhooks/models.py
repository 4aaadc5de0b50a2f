from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Webhook(IdMixin, TimestampMixin, VersionedMixin, Base):
    """A subscription: events of the listed types are signed and posted to ``url``.

    The worker's bookkeeping (the failure streak) is written with plain UPDATE statements, so
    it does not change the resource's version (ETag).
    """

    __tablename__ = "webhooks"

    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    description: Mapped[str | None] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    """The secret before the last rotation, still signing until ``previous_secret_expires_at``."""
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    subscribed_since: Mapped[datetime] = mapped_column(server_default=func.now())
    """Events from this time on are sent: since creation, or since it was last switched on."""
    failing_since: Mapped[datetime | None]
    """First failed attempt of the current streak; cleared by a delivered one."""


class WebhookDeliveryStatus(StrEnum):
    pending = "pending"
    """Waiting for its first attempt or a retry (or for an earlier delivery to the endpoint)."""
    delivered = "delivered"
    """The endpoint answered 2xx."""
    failed = "failed"
    """Given up: the webhook was disabled after failing for too long."""


class WebhookDelivery(IdMixin, Base):
    """One event for one webhook: created by the worker's fan-out, then attempted in event
    order per webhook until the endpoint takes it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        # The head of each webhook's line: its pending delivery with the lowest id.
        Index(
            "ix_webhook_deliveries_pending",
            "webhook_id",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    webhook_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        Enum(WebhookDeliveryStatus, name="webhook_delivery_status"),
        server_default=WebhookDeliveryStatus.pending.value,
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_latency_ms: Mapped[int | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


fan_out_cursor = Table(
    "webhook_fan_out_cursor",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("last_txid", BigInteger, nullable=False),
    Column("last_event_id", BigInteger, nullable=False),
)
"""One row: the position (transaction id, event id) in the event feed fanned out so far,
locked by the worker fanning out."""
