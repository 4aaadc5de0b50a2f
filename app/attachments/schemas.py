from __future__ import annotations

from datetime import datetime

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field


class AttachmentUpload(BaseModel):
    filename: str = Field(min_length=1, max_length=500, examples=["kvittering.pdf"])
    content_type: str = Field(
        default="application/octet-stream", max_length=200, examples=["application/pdf"]
    )
    content_base64: Base64Bytes = Field(description="The file, base64-encoded.")


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None
    inline: bool
    created_at: datetime
