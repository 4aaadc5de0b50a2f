from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema


def _decode_base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {exc}") from exc


MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024

StrictBase64 = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


class AttachmentUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=500, examples=["kvittering.pdf"])
    content_type: str = Field(
        default="application/octet-stream", max_length=200, examples=["application/pdf"]
    )
    content_base64: StrictBase64 = Field(
        description="The file, base64-encoded (25 MiB at most).",
        # Checked before decoding: base64 takes 4 characters for every 3 bytes.
        max_length=(MAX_ATTACHMENT_BYTES + 2) // 3 * 4,
    )


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
