from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.tickets.schemas import Tag


class TagRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    ticket_count: int = Field(description="How many tickets carry the tag.")


class TagRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_name: Tag = Field(description="Tickets that have both tags keep one of them.")


class TagRenamed(BaseModel):
    old_name: str
    new_name: str
    tickets_changed: int
