from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.agents.models import AgentRole
from app.auth.schemas import TotpCode
from app.core.types import EmailAddress, reject_null

SkillLevel = Annotated[int, Field(ge=1, le=5)]
Password = Annotated[
    str, Field(min_length=12, max_length=1024, description="At least 12 characters.")
]
LanguageTag = Annotated[str, Field(min_length=2, max_length=16, examples=["da", "sv", "en"])]


class AgentBase(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Åsa Sørensen"])
    role: AgentRole = AgentRole.agent
    skills: dict[str, SkillLevel] = Field(
        default_factory=dict, description="Skill name to level 1-5.", examples=[{"billing": 4}]
    )
    capacity: int = Field(default=10, ge=0, le=1000, description="Open tickets at most.")
    languages: list[LanguageTag] = Field(default_factory=list)
    active: bool = True


class AgentCreate(AgentBase):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    password: Password | None = Field(
        default=None, description="Needed to log in with email and password."
    )


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: AgentRole | None = None
    skills: dict[str, SkillLevel] | None = None
    capacity: int | None = Field(default=None, ge=0, le=1000)
    languages: list[LanguageTag] | None = None
    active: bool | None = None
    available: bool | None = None
    password: Password | None = Field(
        default=None, description="Set another agent's password; your own is changed at /me."
    )
    require_2fa: bool | None = Field(
        default=None,
        description="Require two-factor login of this agent, whatever its role: an agent not "
        "enrolled yet loses its login sessions and its next login is good only for enrolling.",
    )

    _not_null = field_validator(
        "name",
        "role",
        "skills",
        "capacity",
        "languages",
        "active",
        "available",
        "password",
        "require_2fa",
    )(reject_null)


class AgentSelfUpdate(BaseModel):
    """What agents may change about themselves."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    languages: list[LanguageTag] | None = None
    available: bool | None = Field(default=None, description="Away agents get no new tickets.")
    password: Password | None = Field(
        default=None, description="A new password: needs `current_password` (and `code`)."
    )
    current_password: str | None = Field(
        default=None,
        max_length=1024,
        description="Your password now; needed to set a new one, so a stolen session alone "
        "cannot take the account over.",
    )
    code: TotpCode | None = Field(
        default=None,
        description="A current code of your authenticator app, needed with a new password when "
        "your two-factor login is on.",
    )

    _not_null = field_validator(
        "name", "languages", "available", "password", "current_password", "code"
    )(reject_null)


class AgentPublicRead(BaseModel):
    """What any agent, external partners too, may see of a colleague."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    active: bool


class AgentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: AgentRole
    skills: dict[str, int]
    capacity: int
    languages: list[str]
    active: bool
    available: bool
    require_2fa: bool = Field(description="Two-factor login required of this agent by an admin.")
    created_at: datetime
    updated_at: datetime
    version: int
