from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments.models import Attachment, Blob


async def store_blob(session: AsyncSession, sha256: str, content: bytes) -> None:
    await session.execute(
        insert(Blob)
        .values(sha256=sha256, size=len(content), content=content)
        .on_conflict_do_nothing(index_elements=[Blob.sha256])
    )


async def get(session: AsyncSession, attachment_id: int) -> Attachment | None:
    return await session.get(Attachment, attachment_id)


async def content(session: AsyncSession, sha256: str) -> bytes:
    data: bytes = (
        await session.execute(select(Blob.content).where(Blob.sha256 == sha256))
    ).scalar_one()
    return data
