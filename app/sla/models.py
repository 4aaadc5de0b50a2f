from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class SlaPolicy(IdMixin, TimestampMixin, VersionedMixin, Base):
    """A service-level policy a ticket is held to; routing rules choose it for a ticket."""

    __tablename__ = "sla_policies"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
