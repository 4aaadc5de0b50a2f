from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Enum, ForeignKey, Integer, String, Table, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin
from app.tickets.models import TicketPriority


class CustomerFields(StrEnum):
    """What an external agent working a queue sees of its tickets' customers."""

    none = "none"
    name = "name"
    name_and_email = "name_and_email"


class RetentionAction(StrEnum):
    """What the retention pass does with a ticket closed longer than its queue keeps them."""

    anonymise = "anonymise"
    """Keep the ticket as a statistics row (status, priority, queue, times) without content."""
    delete = "delete"


queue_grants = Table(
    "queue_grants",
    Base.metadata,
    Column("queue_id", BigInteger, ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "agent_id",
        BigInteger,
        ForeignKey("agents.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column(
        "customer_fields",
        Enum(CustomerFields, name="customer_fields"),
        nullable=False,
        server_default=CustomerFields.none.value,
    ),
)
"""Queues an external agent may work; other roles need no grant."""


class Queue(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    inbound_addresses: Mapped[list[str]] = mapped_column(
        ARRAY(String(320)), server_default=text("'{}'")
    )
    default_priority: Mapped[TicketPriority] = mapped_column(
        Enum(TicketPriority, name="ticket_priority"), server_default=TicketPriority.normal.value
    )
    required_skills: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    team_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    # use_alter: mailboxes name a default queue too; the cycle is closed after both exist.
    mailbox_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("mailboxes.id", ondelete="SET NULL", use_alter=True)
    )
    """The mailbox this queue's tickets are answered from when they did not come by mail."""
    acknowledge: Mapped[bool | None]
    """Acknowledge new tickets of this queue; NULL: as the mailbox says (web forms: no)."""
    acknowledgement_template_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="SET NULL")
    )
    sla_policy_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sla_policies.id", ondelete="SET NULL"), index=True
    )
    """The SLA policy of this queue's tickets unless a routing rule sets another."""
    retention_months: Mapped[int | None] = mapped_column(Integer)
    """Closed tickets older than this are anonymised or deleted; NULL: kept."""
    retention_action: Mapped[RetentionAction] = mapped_column(
        Enum(RetentionAction, name="retention_action"),
        server_default=RetentionAction.anonymise.value,
    )
    retention_confirmed_months: Mapped[int | None] = mapped_column(Integer)
    retention_confirmed_action: Mapped[RetentionAction | None] = mapped_column(
        Enum(RetentionAction, name="retention_action", create_type=False)
    )
    """The policy an admin confirmed after its preview; the retention pass acts only while
    ``retention_months`` and ``retention_action`` are still exactly this."""
    retention_confirmed_at: Mapped[datetime | None]
