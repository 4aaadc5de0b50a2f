from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.types import Description, reject_null
from app.incidents.models import IncidentState

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    Field(examples=["Netbanken er nede"]),
]
Minutes = Annotated[int, Field(ge=5, le=10_080, description="Between 5 minutes and a week.")]


class IncidentCreate(BaseModel):
    """A new incident. With `template_id` and `update_interval_minutes`, its open tickets get
    the template every interval until it is resolved."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    status_text: Description = Field(
        default="", description="The public status, for templates: `{{ incident.status_text }}`."
    )
    template_id: int | None = None
    update_interval_minutes: Minutes | None = None
    next_update_at: AwareDatetime | None = Field(
        default=None, description="The first periodic update; one interval from now if left out."
    )

    @model_validator(mode="after")
    def _periodic_needs_both(self) -> IncidentCreate:
        if (self.template_id is None) != (self.update_interval_minutes is None):
            raise ValueError("periodic updates need both template_id and update_interval_minutes")
        return self


class IncidentUpdate(BaseModel):
    """Changes to an incident; fields left out stay. `state: resolved` stops its periodic
    updates; null `update_interval_minutes` stops them too."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    status_text: Description | None = None
    state: IncidentState | None = None
    template_id: int | None = None
    update_interval_minutes: Minutes | None = None
    next_update_at: AwareDatetime | None = None

    _not_null = field_validator("title", "status_text", "state")(reject_null)


class IncidentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status_text: str
    state: IncidentState
    template_id: int | None
    update_interval_minutes: int | None
    next_update_at: datetime | None = Field(description="When the next periodic update goes.")
    created_by: int | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class IncidentFilters(BaseModel):
    state: IncidentState | None = None


class IncidentTicketsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_ids: list[int] = Field(min_length=1, max_length=1000)


class IncidentTicketRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ticket_id: int
    created_at: datetime = Field(description="When the ticket was linked.")


class IncidentTicketsAdded(BaseModel):
    linked: list[int] = Field(description="The tickets linked now (not those linked before).")


class StatusUpdateCreate(BaseModel):
    """A status message to every open ticket of the incident: a text, or a template filled in
    for each ticket (with `incident.title`, `incident.status_text`, `incident.next_update_at`)."""

    model_config = ConfigDict(extra="forbid")

    body_text: str | None = Field(default=None, min_length=1, max_length=1_000_000)
    body_html: str | None = Field(default=None, max_length=5_000_000)
    template_id: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> StatusUpdateCreate:
        if (self.body_text is None) == (self.template_id is None):
            raise ValueError("give either body_text or template_id")
        if self.body_html is not None and self.body_text is None:
            raise ValueError("body_html goes with body_text")
        return self


class IncidentStatusUpdateRead(BaseModel):
    """A status message posted to the incident's tickets."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    incident_id: int
    body_text: str | None = Field(description="The text sent; null when a template was sent.")
    template_id: int | None
    author_id: int | None = Field(description="The agent who posted it.")
    created_at: datetime
    ticket_ids: list[int] = Field(description="The tickets it reached.")


class SkippedTicket(BaseModel):
    ticket_id: int
    reason: str


class StatusUpdateResult(BaseModel):
    sent: int = Field(description="How many tickets got the message.")
    ticket_ids: list[int] = Field(description="The tickets that got it.")
    skipped: list[SkippedTicket] = Field(
        description="Open tickets that could not get it (no address, no mailbox...), and why."
    )


class ProactiveUpdatesSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: int
    every_minutes: Minutes
    next_update_at: AwareDatetime | None = Field(
        default=None, description="The first update; one interval from now if left out."
    )


class ProactiveUpdatesRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ticket_id: int
    template_id: int
    every_minutes: int
    next_update_at: datetime
    created_by: int | None
    created_at: datetime
