from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.agents.models import AgentRole
from app.core.types import Description, reject_null

TeamName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Økonomi og fakturering"]),
]


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TeamName
    description: Description | None = None


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TeamName | None = None
    description: Description | None = Field(default=None, description="null clears it.")

    _not_null = field_validator("name")(reject_null)


class TeamRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class TeamMemberRead(BaseModel):
    """A member of a team: enough of the agent to show a roster without a second call."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str
    role: AgentRole
    active: bool
    available: bool
