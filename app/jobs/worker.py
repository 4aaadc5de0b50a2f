"""The bulk job worker: changes the tickets of bulk jobs, in every worker process at once.

Each batch is one transaction: its items are claimed with ``FOR UPDATE SKIP LOCKED`` and stay
locked until their tickets' changes and outcomes commit together, so two workers never work
on one item and a worker that dies leaves its batch pending for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.jobs import service
from app.outbound.service import OutboundConfig

log = structlog.get_logger(__name__)


class BulkJobWorker:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        config: OutboundConfig,
        *,
        batch_size: int = 20,
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.maker = maker
        self.config = config
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.clock = clock

    async def run_batch(self) -> int:
        """Work on one batch of pending items, if any; returns how many."""
        async with self.maker() as session, session.begin():
            return await service.work_batch(
                session, self.config, self.clock(), size=self.batch_size
            )

    async def run_until_idle(self) -> int:
        """Work until no pending item is left (or none another worker does not hold); for the
        CLI and tests. Returns the number of items worked on."""
        worked = 0
        while batch := await self.run_batch():
            worked += batch
        return worked

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; the batch in hand is finished first."""
        log.info("bulk_jobs_started", batch_size=self.batch_size)
        while not stop.is_set():
            try:
                busy = await self.run_batch()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("bulk_jobs_failed", error=str(exc))
                busy = 0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
        log.info("bulk_jobs_stopped")
