from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class FindingField(StrEnum):
    """The message text a finding is in."""

    subject = "subject"
    body_text = "body_text"
    body_html = "body_html"
    new_text = "new_text"


class MessageFinding(IdMixin, Base):
    """A sensitive value in a message: only where it is, never a copy of it, so masking and
    revealing read the message itself and erasing the message erases the finding with it."""

    __tablename__ = "message_findings"

    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[FindingField] = mapped_column(Enum(FindingField, name="finding_field"))
    kind: Mapped[str] = mapped_column(String(120))
    """A detector (dk_cpr, payment_card, iban ...) or ``custom:`` and a pattern's name."""
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)


class SensitivePattern(IdMixin, TimestampMixin, VersionedMixin, Base):
    """A regex an administrator adds to the detectors (account numbers, customer numbers)."""

    __tablename__ = "privacy_patterns"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    regex: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean)
