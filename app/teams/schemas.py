from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.agents.models import AgentRole

TeamName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Økonomi og fakturering"]),
]
Description = Annotated[str, Field(max_length=10_000)]


class TeamCreate(BaseModel):
    name: TeamName
    description: Description | None = None


class TeamUpdate(BaseModel):
    name: TeamName | None = None
    description: Description | None = Field(default=None, description="null clears it.")

    @field_validator("name")
    @classmethod
    def _name_stays_set(cls, value: str | None) -> str:
        # Runs only for a name that was sent: absent means "unchanged", null is a mistake.
        if value is None:
            raise ValueError("the name cannot be null")
        return value


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
