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
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class IncidentState(StrEnum):
    open = "open"
    resolved = "resolved"


class Incident(IdMixin, TimestampMixin, VersionedMixin, Base):
    """Something that affects many customers at once ("our web bank is down"): its tickets
    are linked to it and get its status updates together."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_state_created_at_id", "state", "created_at", "id"),
        # What the scheduler pass asks for: open incidents whose next update is due.
        Index(
            "ix_incidents_next_update_at_open",
            "next_update_at",
            postgresql_where=text("state = 'open'"),
        ),
    )

    title: Mapped[str] = mapped_column(String(300))
    status_text: Mapped[str] = mapped_column(Text, server_default="")
    """The public status, as templates show it (``incident.status_text``)."""
    state: Mapped[IncidentState] = mapped_column(
        Enum(IncidentState, name="incident_state"), server_default=IncidentState.open.value
    )
    template_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="SET NULL")
    )
    """The template of the periodic updates."""
    update_interval_minutes: Mapped[int | None] = mapped_column(Integer)
    next_update_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None]


class IncidentTicket(IdMixin, Base):
    __tablename__ = "incident_tickets"
    __table_args__ = (
        UniqueConstraint("incident_id", "ticket_id"),
        Index("ix_incident_tickets_ticket_id", "ticket_id"),
    )

    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incidents.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class IncidentStatusUpdate(IdMixin, Base):
    """A status message posted to an incident's tickets, kept on the incident: its text (none
    when a template was sent) becomes the incident's ``status_text``."""

    __tablename__ = "incident_updates"
    __table_args__ = (
        Index("ix_incident_updates_incident_id_created_at", "incident_id", "created_at"),
    )

    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incidents.id", ondelete="CASCADE")
    )
    body_text: Mapped[str | None] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="SET NULL")
    )
    author_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]
    ticket_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    """The tickets the message reached."""


class TicketUpdateSchedule(IdMixin, Base):
    """Proactive updates of one ticket: its customer gets the template every ``every_minutes``
    until the ticket is solved."""

    __tablename__ = "ticket_update_schedules"
    __table_args__ = (Index("ix_ticket_update_schedules_next_update_at", "next_update_at"),)

    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), unique=True
    )
    template_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="CASCADE")
    )
    every_minutes: Mapped[int] = mapped_column(Integer)
    next_update_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
