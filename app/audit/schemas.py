from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditFilters(BaseModel):
    entity_type: str | None = Field(default=None, examples=["ticket"])
    entity_id: str | None = None
    actor_agent_id: int | None = None
    action: str | None = Field(default=None, examples=["ticket.updated"])
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


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
    after: dict[str, Any] | None
