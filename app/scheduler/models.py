from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class AutomationFiring(Base):
    """A scheduled rule that fired on a ticket, so that it fires once per episode: the row is
    dropped when a later pass finds the rule's conditions false for the ticket, and it no
    longer counts once the ticket's status changed after the firing."""

    __tablename__ = "automation_firings"

    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The rule's id, kept across rule set versions: editing a rule does not fire it again."""
    rule_set_version: Mapped[int] = mapped_column(Integer)
    fired_at: Mapped[datetime]
    status_changed_at: Mapped[datetime]
    """The ticket's ``status_changed_at`` once the rule's actions were applied."""
