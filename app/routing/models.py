from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class RuleSetVersion(IdMixin, Base):
    """One saved state of the routing rules. Versions are never changed: every change of a
    rule writes a new one, and the highest is the one in force."""

    __tablename__ = "rule_set_versions"

    version: Mapped[int] = mapped_column(Integer, unique=True)
    definition: Mapped[dict[str, Any]]
    """The rule set as its API/YAML form: business hours and the ordered rules."""
    comment: Mapped[str | None] = mapped_column(Text)
    saved_by_agent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    saved_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RoutingTrace(IdMixin, Base):
    """Why a ticket was routed as it was: each rule evaluated, matched or not and why, and the
    actions applied."""

    __tablename__ = "routing_traces"
    __table_args__ = (Index("ix_routing_traces_ticket_id_id", "ticket_id", "id"),)

    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="SET NULL")
    )
    trigger: Mapped[str] = mapped_column(String(30))
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    """NULL: no rules were defined yet."""
    facts: Mapped[dict[str, Any]]
    """What the rules saw (trigger, moment, field values). Versions never change and the
    engine is pure, so the per-rule trace is rebuilt from these when asked for, exactly,
    instead of storing up to hundreds of kilobytes of explanations per ticket."""
    applied: Mapped[list[dict[str, Any]]]
    """Each action applied, with its outcome (e.g. who an assignment chose and why)."""
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AssignmentCursor(Base):
    """Where round-robin assignment stands in a pool of agents (a queue or a team)."""

    __tablename__ = "assignment_cursors"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_agent_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
