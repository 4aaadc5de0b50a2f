from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.ingest.models import InboundStatus
from app.tickets.models import MailKind


class InboundMailRead(BaseModel):
    """A received mail as ingestion recorded it (the raw mail is a separate download)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str = Field(description="`imap` or `import`.")
    mailbox_id: int | None
    folder: str | None
    uidvalidity: int | None
    uid: int | None
    size: int
    message_id_header: str | None
    sender: str | None
    status: InboundStatus
    kind: MailKind | None
    auto_reply_allowed: bool | None = Field(
        description="Whether the sender may get an automatic answer for this mail."
    )
    quarantine_reason: str | None
    attempts: int
    ticket_id: int | None
    message_id: int | None
    received_at: datetime
    processed_at: datetime | None
    handled_on_server_at: datetime | None
