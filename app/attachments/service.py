"""File content is stored once per SHA-256 in its own table, outside the message rows."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments import repository
from app.attachments.models import Attachment
from app.attachments.schemas import MAX_ATTACHMENT_BYTES, AttachmentUpload
from app.core.errors import Invalid, NotFound


@dataclass(frozen=True)
class FileData:
    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None
    inline: bool = False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def store_blob(session: AsyncSession, data: bytes) -> str:
    """Keep the bytes (once, however often they are stored); returns their SHA-256."""
    digest = await asyncio.to_thread(_sha256, data)
    await repository.store_blob(session, digest, data)
    return digest


async def store_files(session: AsyncSession, files: Sequence[FileData]) -> list[Attachment]:
    """Store the files' content and return attachment rows to hang on a message."""
    return [
        Attachment(
            sha256=await store_blob(session, file.content),
            filename=file.filename,
            content_type=file.content_type,
            size=len(file.content),
            content_id=file.content_id,
            inline=file.inline,
        )
        for file in files
    ]


async def store(session: AsyncSession, uploads: list[AttachmentUpload]) -> list[Attachment]:
    """Files sent through the API, each within the size limit."""
    for index, upload in enumerate(uploads):
        if len(upload.content_base64) > MAX_ATTACHMENT_BYTES:
            raise Invalid(
                f"{upload.filename} is {len(upload.content_base64)} bytes; "
                f"the limit is {MAX_ATTACHMENT_BYTES}.",
                field=f"body.attachments.{index}.content_base64",
            )
    files = [FileData(u.filename, u.content_type, u.content_base64) for u in uploads]
    return await store_files(session, files)


async def get(session: AsyncSession, attachment_id: int) -> Attachment:
    attachment = await repository.get(session, attachment_id)
    if attachment is None:
        raise NotFound(f"Attachment {attachment_id} does not exist.")
    return attachment


async def content(session: AsyncSession, attachment: Attachment) -> bytes:
    return await repository.content(session, attachment.sha256)


async def blob(session: AsyncSession, sha256: str) -> bytes:
    return await repository.content(session, sha256)
