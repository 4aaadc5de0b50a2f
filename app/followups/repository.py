from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.followups.models import FollowUp


async def current(
    session: AsyncSession, ticket_id: int, *, for_update: bool = False
) -> FollowUp | None:
    """The ticket's reminder not yet cleared (fired or waiting)."""
    statement = select(FollowUp).where(
        FollowUp.ticket_id == ticket_id, FollowUp.cleared_at.is_(None)
    )
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def current_of(session: AsyncSession, ticket_ids: Sequence[int]) -> list[FollowUp]:
    statement = select(FollowUp).where(
        FollowUp.ticket_id.in_(ticket_ids), FollowUp.cleared_at.is_(None)
    )
    return list(await session.scalars(statement))


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[FollowUp]:
    """Waiting reminders due by ``now``, locked for this transaction; those another pass holds
    are skipped, so each fires once however many passes run."""
    statement = (
        select(FollowUp)
        .where(FollowUp.fired_at.is_(None), FollowUp.cleared_at.is_(None), FollowUp.due_at <= now)
        .order_by(FollowUp.due_at, FollowUp.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(statement))
