"""The follow-up pass the scheduler runs each interval, in any number of worker processes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.followups import service


async def run_follow_up_pass(
    maker: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = 500
) -> int:
    """Fire every reminder due by ``now``; returns how many fired. Each batch is claimed
    (``FOR UPDATE SKIP LOCKED``) and fired in one transaction, so a reminder fires once even
    with passes running side by side, and a pass that dies leaves its batch for the next."""
    fired = 0
    while True:
        async with maker.begin() as session:
            due = await service.claim_due(session, now, batch)
            for follow_up in due:
                await service.fire(session, follow_up, now)
        fired += len(due)
        if len(due) < batch:
            return fired
