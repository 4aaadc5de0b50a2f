from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from app.core.types import Description
from app.privacy.detectors import mask_text


class FollowUpSet(BaseModel):
    """When the ticket should come back, as a time or as a wait from now, and why."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    due_at: AwareDatetime | None = Field(
        default=None,
        description="When to come back, with its UTC offset: `2026-11-26T10:00:00+01:00`.",
    )
    wait: timedelta | None = Field(
        default=None,
        alias="in",
        description="Or how long from now, as an ISO 8601 duration: `P3D` (three days), "
        "`PT2H` (two hours), `P1DT12H`.",
        examples=["P3D"],
    )
    note: Description = Field(description='What to do then: "call back about the invoice".')

    @field_validator("wait", mode="before")
    @classmethod
    def _iso_duration(cls, value: Any) -> Any:
        # One clear form: pydantic would also take seconds or "HH:MM:SS", which read ambiguously.
        if value is not None and not (isinstance(value, str) and value.upper().startswith("P")):
            raise ValueError("give an ISO 8601 duration such as P3D or PT2H")
        return value

    @model_validator(mode="after")
    def _one_time(self) -> FollowUpSet:
        if (self.due_at is None) == (self.wait is None):
            raise ValueError("give either due_at or in")
        return self

    def due(self, now: datetime) -> datetime:
        if self.due_at is not None:
            return self.due_at
        assert self.wait is not None
        return now + self.wait


class FollowUpRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    due_at: datetime
    note: Annotated[
        str,
        AfterValidator(mask_text),
        Field(description="Identity, card and account numbers in it are masked."),
    ]
    agent_id: int | None = Field(
        description="Whom it reminds: the assignee when it was set, else who set it."
    )
    created_by: int | None
    created_at: datetime
    fired_at: datetime | None = Field(
        description="When it came due and brought the ticket back; it stays until cleared."
    )
    cleared_at: datetime | None
    cleared_by: int | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fired(self) -> bool:
        return self.fired_at is not None
