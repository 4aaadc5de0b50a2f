"""Attachment content is stored once per SHA-256 in its own table, outside the message rows."""

from __future__ import annotations

import asyncio
import hashlib

from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments import repository
from app.attachments.models import Attachment
from app.attachments.schemas import MAX_ATTACHMENT_BYTES, AttachmentUpload
from app.core.errors import Invalid, NotFound


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def store(session: AsyncSession, uploads: list[AttachmentUpload]) -> list[Attachment]:
    """Store the files' content and return attachment rows to hang on a message."""
    attachments = []
    for index, upload in enumerate(uploads):
        data = upload.content_base64
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise Invalid(
                f"{upload.filename} is {len(data)} bytes; the limit is {MAX_ATTACHMENT_BYTES}.",
                field=f"body.attachments.{index}.content_base64",
            )
        digest = await asyncio.to_thread(_sha256, data)
        await repository.store_blob(session, digest, data)
        attachments.append(
            Attachment(
                sha256=digest,
                filename=upload.filename,
                content_type=upload.content_type,
                size=len(data),
            )
        )
    return attachments


async def get(session: AsyncSession, attachment_id: int) -> Attachment:
    attachment = await repository.get(session, attachment_id)
    if attachment is None:
        raise NotFound(f"Attachment {attachment_id} does not exist.")
    return attachment


async def content(session: AsyncSession, attachment: Attachment) -> bytes:
    return await repository.content(session, attachment.sha256)
