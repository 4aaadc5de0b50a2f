from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Enum,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class BodyFormat(StrEnum):
    text = "text"
    """Plain text with placeholders; the HTML part is made from it."""
    html = "html"
    """HTML with placeholders (values are escaped); the plain-text part is made from it."""


template_queues = Table(
    "template_queues",
    Base.metadata,
    Column(
        "template_id", BigInteger, ForeignKey("templates.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "queue_id",
        BigInteger,
        ForeignKey("queues.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)
"""The queues a template is meant for; a template with none serves every queue."""


class Template(IdMixin, TimestampMixin, VersionedMixin, Base):
    """A canned reply kept centrally: one change reaches every agent."""

    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    category: Mapped[str | None] = mapped_column(String(200), index=True)
    language: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    body_format: Mapped[BodyFormat] = mapped_column(
        Enum(BodyFormat, name="body_format"), server_default=BodyFormat.text.value
    )
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class TemplateVersion(IdMixin, Base):
    """Every saved state of a template, so a change can be seen and undone."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    template_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    body_format: Mapped[BodyFormat] = mapped_column(Enum(BodyFormat, name="body_format"))
    active: Mapped[bool] = mapped_column(Boolean)
    queue_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    saved_by_agent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    saved_at: Mapped[datetime] = mapped_column(server_default=func.now())
