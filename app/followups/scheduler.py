"""The follow-up pass the scheduler runs each interval, in any number of worker processes."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.followups import service
from app.scheduler.items import handle_each


async def run_follow_up_pass(
    maker: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = 500
) -> int:
    """Fire every reminder due by ``now``; returns how many fired. Each batch is claimed
    (``FOR UPDATE SKIP LOCKED``) and fired in one transaction, so a reminder fires once even
    with passes running side by side, and a pass that dies leaves its batch for the next. A
    reminder that fails to fire is pushed back a little, so it never holds up a batch."""
    fired = 0
    while True:
        async with maker.begin() as session:
            due = await service.claim_due(session, now, batch)
            fired += await handle_each(
                session,
                due,
                partial(service.fire, session, now=now),
                name="follow_ups",
                push_back=partial(service.push_back, session, now=now),
            )
        if len(due) < batch:
            return fired
