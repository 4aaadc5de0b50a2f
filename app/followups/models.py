from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class FollowUp(IdMixin, Base):
    """A reminder on a ticket: at ``due_at`` the ticket comes back to ``agent_id``.

    It stays the ticket's current reminder, fired or not, until an agent clears it (or sets
    a new one), so a customer's "thanks" in between never silently cancels it."""

    __tablename__ = "ticket_follow_ups"
    __table_args__ = (
        # One current reminder per ticket.
        Index(
            "uq_ticket_follow_ups_ticket_id_current",
            "ticket_id",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
        ),
        # What the scheduler pass asks for: the reminders still waiting, by due time.
        Index(
            "ix_ticket_follow_ups_due_at_waiting",
            "due_at",
            postgresql_where=text("fired_at IS NULL AND cleared_at IS NULL"),
        ),
        Index("ix_ticket_follow_ups_ticket_id_created_at", "ticket_id", "created_at"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    """Whom it reminds: the ticket's assignee when it was set, else whoever set it."""
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    fired_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
