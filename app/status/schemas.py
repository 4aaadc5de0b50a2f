from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from app.tickets.models import TicketStatus


class Author(StrEnum):
    customer = "customer"
    support = "support"


class StatusMessage(BaseModel):
    author: Author = Field(description="Who wrote it: the customer, or the support team.")
    written_at: datetime
    text: str


class StatusRead(BaseModel):
    """What the customer may see of their ticket: no internal notes, names or addresses."""

    ticket_number: int
    reference: str = Field(examples=["[#100123]"])
    subject: str
    status: TicketStatus
    status_text: str = Field(examples=["We are working on it"])
    created_at: datetime
    updated_at: datetime
    messages: list[StatusMessage] = Field(description="The latest public messages, oldest first.")
