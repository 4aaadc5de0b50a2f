from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.queues.models import RetentionAction

Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    Field(
        description="Why: the request it answers (kept in the audit log).",
        examples=["Request by mail of 2026-11-20, case 4711"],
    ),
]


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ErasureRead(BaseModel):
    customer_id: int = Field(description="The customer record, kept without personal data.")
    erased: dict[str, int] = Field(
        description="Rows erased, anonymised or scrubbed, per table (the audit event of the "
        "erasure records the same).",
        examples=[{"messages": 4, "attachments": 1, "tickets": 2, "audit_events": 9}],
    )


class RetentionQueuePreview(BaseModel):
    queue_id: int
    queue_name: str
    retention_months: int
    action: RetentionAction
    closed_before: datetime = Field(description="Tickets closed before this are due.")
    tickets: int = Field(description="Tickets the next retention pass would handle.")
    oldest_closed_at: datetime | None
    confirmed: bool = Field(
        description="An admin confirmed this very policy after a preview "
        "(`POST /retention/queues/{id}/confirm`): only then does the pass act on the queue."
    )
    confirmed_at: datetime | None = Field(description="When the policy was last confirmed.")


class RetentionConfirm(BaseModel):
    """The policy the admin saw in the preview; it must still be the queue's."""

    model_config = ConfigDict(extra="forbid")

    retention_months: int = Field(ge=1, examples=[36])
    retention_action: RetentionAction


class RetentionPreview(BaseModel):
    at: datetime = Field(description="The moment the report is for.")
    queues: list[RetentionQueuePreview] = Field(
        description="Every queue with a retention period, by name."
    )
