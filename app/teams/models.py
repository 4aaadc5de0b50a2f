from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin

team_members = Table(
    "team_members",
    Base.metadata,
    Column("team_id", BigInteger, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
)


class Team(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
