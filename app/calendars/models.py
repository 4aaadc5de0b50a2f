from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Calendar(IdMixin, TimestampMixin, VersionedMixin, Base):
    """A desk's business hours: weekly opening hours in its time zone, and its holidays."""

    __tablename__ = "calendars"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    # {"mon": [{"start": "08:00", "end": "16:00"}], ...}: validated by schemas.WeeklyHours.
    hours: Mapped[dict[str, Any]]
    description: Mapped[str | None] = mapped_column(Text)


class CalendarHoliday(IdMixin, Base):
    """A local date on which the calendar's desk is closed all day."""

    __tablename__ = "calendar_holidays"
    __table_args__ = (UniqueConstraint("calendar_id", "date"),)

    calendar_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("calendars.id", ondelete="CASCADE")
    )
    date: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200))
