from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Enum, Integer, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin, VersionedMixin


class AgentRole(StrEnum):
    """Roles from most to least powerful; ``external`` is an outside partner."""

    admin = "admin"
    supervisor = "supervisor"
    agent = "agent"
    external = "external"


ROLE_RANK: dict[AgentRole, int] = {
    AgentRole.external: 0,
    AgentRole.agent: 1,
    AgentRole.supervisor: 2,
    AgentRole.admin: 3,
}


class Agent(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "agents"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[AgentRole] = mapped_column(Enum(AgentRole, name="agent_role"))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    skills: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    capacity: Mapped[int] = mapped_column(Integer, server_default=text("10"))
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    available: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Besides the roles TICKETRY_REQUIRE_2FA_ROLES names: set per agent by an admin.
    require_2fa: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
