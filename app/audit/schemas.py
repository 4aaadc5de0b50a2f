from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AuditFilters(BaseModel):
    entity_type: str | None = Field(
        default=None, description="Events about this kind of entity.", examples=["ticket"]
    )
    entity_id: str | None = Field(
        default=None, description="Events about this entity (with `entity_type`).", examples=["42"]
    )
    actor_agent_id: int | None = Field(default=None, description="Events by this agent.")
    actor_label: str | None = Field(
        default=None,
        description="Events by this actor label: an agent's email, or a system actor such as "
        "`cli` or `mail-ingest`.",
    )
    action: str | None = Field(default=None, examples=["ticket.updated"])
    occurred_after: datetime | None = Field(
        default=None, description="Events at or after this time (ISO-8601)."
    )
    occurred_before: datetime | None = Field(
        default=None, description="Events before this time (ISO-8601)."
    )


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_agent_id: int | None
    actor_label: str = Field(description="The actor's email, or what the system acted as.")
    actor_token_id: int | None
    source_ip: str | None
    request_id: str | None
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None = Field(
        description="For a change, the new values; for a read (`*.viewed`, a reveal, an "
        "export), what was read and why, if the reader said."
    )


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class BrokenLink(BaseModel):
    position: int = Field(description="The first position in the chain that does not hold.")
    event_id: int | None = Field(description="The audit event sealed there, when known.")
    problem: Literal["altered", "deleted", "missing_link"] = Field(
        description="`altered`: the event no longer matches its hash; `deleted`: the event is "
        "gone; `missing_link`: links of the chain itself are gone."
    )
    detail: str


class ChainHead(BaseModel):
    position: int
    hash: str = Field(
        description="Keep a copy elsewhere: a later head must continue from it, so even a "
        "rewrite of both tables to the end shows."
    )


class RedactingEvent(BaseModel):
    """A sealed event that redacted others: the one who decided it answers for it."""

    event_id: int
    action: str = Field(examples=["customer.erased"])
    entity_type: str
    entity_id: str
    actor_label: str
    occurred_at: datetime
    redacted: int = Field(description="Checked events whose content it replaced.")


class AuditVerification(BaseModel):
    ok: bool
    checked: int = Field(description="Links of the chain checked.")
    redacted: int = Field(
        default=0,
        description="Checked events whose personal content was redacted (a data subject's "
        "erasure, a retention pass): recorded, and vouched for by the sealed event that did it.",
    )
    redacting_events: list[RedactingEvent] = Field(
        default_factory=list,
        description="The events that vouch for the redactions, oldest first: every change of "
        "sealed content is one of these, for anyone to review.",
    )
    unsealed: int = Field(
        description="Events not sealed yet: written by transactions still running (or just "
        "ended) when the chain was sealed."
    )
    first_broken: BrokenLink | None
    head: ChainHead | None = Field(description="The last link checked; null for an empty chain.")
