from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.outbound.models import DeliveryStatus, OutboundMail


async def claim_due(session: AsyncSession, now: datetime) -> OutboundMail | None:
    """The oldest due mail, locked for this transaction; mail another worker holds is skipped,
    so workers never send one mail at the same time."""
    statement = (
        select(OutboundMail)
        .where(OutboundMail.status == DeliveryStatus.queued, OutboundMail.next_attempt_at <= now)
        .order_by(OutboundMail.next_attempt_at, OutboundMail.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return await session.scalar(statement)
