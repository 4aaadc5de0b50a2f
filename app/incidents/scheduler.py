"""The proactive-update pass the scheduler runs each interval, in any number of worker
processes: incidents' periodic updates and single tickets' schedules."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import get_settings
from app.incidents import service
from app.outbound.service import OutboundConfig
from app.scheduler.items import handle_each


async def run_proactive_update_pass(
    maker: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    batch: int = 500,
    config: OutboundConfig | None = None,
) -> int:
    """Send every update due by ``now``; returns how many incidents and ticket schedules were
    handled. Each batch is claimed (``FOR UPDATE SKIP LOCKED``) and handled in one
    transaction, so an update goes once even with passes side by side; one that fails is
    pushed back a little and the others go. ``config`` (how mail is addressed and signed)
    comes from the settings when not given."""
    config = config or OutboundConfig.from_settings(get_settings())
    handled = 0
    while True:
        async with maker.begin() as session:
            incidents = await service.claim_due_incidents(session, now, batch)
            handled += await handle_each(
                session,
                incidents,
                partial(service.send_periodic_update, session, now=now, config=config),
                name="proactive_updates",
                push_back=partial(service.push_back_incident, session, now=now),
            )
        if len(incidents) < batch:
            break
    while True:
        async with maker.begin() as session:
            schedules = await service.claim_due_schedules(session, now, batch)
            handled += await handle_each(
                session,
                schedules,
                partial(service.send_scheduled_update, session, now=now, config=config),
                name="proactive_updates",
                push_back=partial(service.push_back_schedule, session, now=now),
            )
        if len(schedules) < batch:
            return handled
