from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from app.core.types import reject_null
from app.jobs.models import BulkJobItemState, BulkJobKind, BulkJobState
from app.tickets.models import TicketStatus
from app.tickets.schemas import Tag, TicketFilters


class BulkTicketFilter(TicketFilters):
    """The ticket list's filters, sent as JSON; a misspelt filter is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class BulkTicketChanges(BaseModel):
    """What to change on every selected ticket; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: TicketStatus | None = None
    queue_id: int | None = Field(default=None, description="null takes tickets out of a queue.")
    assignee_id: int | None = Field(default=None, description="null unassigns.")
    team_id: int | None = Field(default=None, description="null clears the team.")
    add_tags: list[Tag] = Field(default_factory=list, max_length=100)
    remove_tags: list[Tag] = Field(default_factory=list, max_length=100)

    _not_null = field_validator("status", "add_tags", "remove_tags")(reject_null)

    @model_validator(mode="after")
    def _something_to_do(self) -> Self:
        fields = self.model_fields_set - {"add_tags", "remove_tags"}
        if not fields and not self.add_tags and not self.remove_tags:
            raise ValueError("name at least one change")
        both = sorted(set(self.add_tags) & set(self.remove_tags))
        if both:
            raise ValueError(f"tags both added and removed: {', '.join(both)}")
        return self


class BulkTicketUpdate(BaseModel):
    """Tickets by id or by filter (one of the two), and the changes to make to each."""

    model_config = ConfigDict(extra="forbid")

    ticket_ids: list[int] | None = Field(default=None, min_length=1, examples=[[101, 102]])
    filter: BulkTicketFilter | None = Field(
        default=None,
        description="The ticket list's filters; the tickets matching when the job is created "
        "are the ones changed.",
    )
    changes: BulkTicketChanges

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if (self.ticket_ids is None) == (self.filter is None):
            raise ValueError("send either ticket_ids or filter")
        return self


class BulkJobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: BulkJobKind
    state: BulkJobState
    requester_agent_id: int | None
    selection: dict[str, Any] = Field(description="The selection as it was sent.")
    changes: dict[str, Any]
    total: int = Field(description="Tickets selected when the job was created.")
    succeeded: int = Field(description="Tickets changed.")
    unchanged: int = Field(description="Tickets that already were as asked.")
    failed: int = Field(description="Tickets that could not be changed; see the job's items.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pending(self) -> int:
        """Tickets still to do (left undone by a cancelled job)."""
        return self.total - self.succeeded - self.unchanged - self.failed


class BulkJobItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    state: BulkJobItemState
    error: str | None = Field(description="Why the ticket could not be changed.")
    finished_at: datetime | None
