from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.types import Description, reject_null

SlaPolicyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Guld: svar inden for én time"]),
]


class SlaPolicyCreate(BaseModel):
    """A new SLA policy. Its targets (first response, resolution, ...) come in a later
    version; a routing rule's `set_sla_policy` action chooses a ticket's policy."""

    model_config = ConfigDict(extra="forbid")

    name: SlaPolicyName
    description: Description | None = None


class SlaPolicyUpdate(BaseModel):
    """Changes to an SLA policy; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: SlaPolicyName | None = None
    description: Description | None = Field(default=None, description="null clears it.")

    _not_null = field_validator("name")(reject_null)


class SlaPolicyRead(BaseModel):
    """A service-level policy a ticket is held to. A routing rule's `set_sla_policy` action
    chooses a ticket's policy; the policy's targets (first response, resolution, ...) come in
    a later version, so for now it is a name and a description."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int
