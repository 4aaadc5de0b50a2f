from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.privacy.models import MessageFinding, SensitivePattern


async def findings_of(session: AsyncSession, message_ids: Sequence[int]) -> list[MessageFinding]:
    if not message_ids:
        return []
    return list(
        await session.scalars(
            select(MessageFinding)
            .where(MessageFinding.message_id.in_(message_ids))
            .order_by(MessageFinding.message_id, MessageFinding.id)
        )
    )


async def enabled_patterns(session: AsyncSession) -> list[SensitivePattern]:
    return list(
        await session.scalars(
            select(SensitivePattern)
            .where(SensitivePattern.enabled.is_(True))
            .order_by(SensitivePattern.id)
        )
    )


async def get_pattern(session: AsyncSession, pattern_id: int) -> SensitivePattern | None:
    return await session.get(SensitivePattern, pattern_id)


async def pattern_id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(SensitivePattern.id).where(SensitivePattern.name == name))


async def list_patterns(
    session: AsyncSession, key: SortKey, cursor: str | None, limit: int
) -> list[SensitivePattern]:
    return list(await session.scalars(paginate(select(SensitivePattern), key, cursor, limit)))
