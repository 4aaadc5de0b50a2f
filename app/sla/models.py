from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class SlaMetric(StrEnum):
    first_response = "first_response"
    """From creation to the first public reply by an agent."""
    next_response = "next_response"
    """From a customer message to the next public reply by an agent."""
    periodic_update = "periodic_update"
    """From a public reply, while the ticket waits on us, to the next public reply."""
    resolution = "resolution"
    """From creation (or reopening) to solved or closed."""


class SlaPolicy(IdMixin, TimestampMixin, VersionedMixin, Base):
    """A service-level policy a ticket is held to: routing rules choose it for a ticket, or
    the ticket's queue names it as its default."""

    __tablename__ = "sla_policies"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    calendar_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("calendars.id", ondelete="SET NULL"), index=True
    )
    """The business hours the targets count in; null: calendar time (24/7)."""
    # {"urgent": {"first_response": 30, ...}, ...} in minutes: validated by schemas.Targets.
    targets: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    at_risk_percent: Mapped[int] = mapped_column(Integer, server_default=text("80"))
    # [{"at_percent": 80, "metrics": [...], "actions": [...]}]: schemas.EscalationStep.
    escalations: Mapped[list[dict[str, Any]]] = mapped_column(server_default=text("'[]'::jsonb"))


class SlaTarget(IdMixin, Base):
    """One cycle of one target on a ticket (the first response, the resolution after a
    reopening, ...): running, paused, met or cancelled. The rows of a ticket are its history."""

    __tablename__ = "ticket_sla_targets"
    __table_args__ = (
        Index(
            "ix_ticket_sla_targets_next_check_at",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
    )

    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    policy_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    metric: Mapped[SlaMetric] = mapped_column(Enum(SlaMetric, name="sla_metric"))
    target_seconds: Mapped[int] = mapped_column(Integer)
    calendar_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("calendars.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime]
    resumed_at: Mapped[datetime]
    """The start of the current running stretch (``started_at`` until the first pause)."""
    elapsed_seconds: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """Business time used in the stretches before ``resumed_at``: pauses are not counted."""
    due_at: Mapped[datetime | None]
    """Null while paused."""
    paused_at: Mapped[datetime | None]
    at_risk_at: Mapped[datetime | None]
    met_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    escalation_level: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """How many escalation steps have fired for this target (its ``ticket_escalations``
    rows); which ones is those rows' ``step_key``, not a position in the policy's list."""
    next_check_at: Mapped[datetime | None]
    """When the breach pass must look next (the next step or the due time); null: never."""


class TicketEscalation(IdMixin, Base):
    """An escalation step that fired for a target: at most once per target and step, the step
    known by its ``step_key`` (``EscalationStep.key``), which survives edits of the policy."""

    __tablename__ = "ticket_escalations"
    __table_args__ = (UniqueConstraint("target_id", "step_key"),)

    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ticket_sla_targets.id", ondelete="CASCADE")
    )
    step: Mapped[int] = mapped_column(Integer)
    """The step's place in the policy's list when it fired."""
    step_key: Mapped[str] = mapped_column(Text)
    at_percent: Mapped[int] = mapped_column(Integer)
    fired_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(Text)
