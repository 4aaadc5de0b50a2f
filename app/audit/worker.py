"""Seals the audit chain every few seconds in every worker process; one at a time does the
work (the others find the chain locked and wait for their next turn)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import run_audit_seal_pass
from app.core.clock import utcnow

log = structlog.get_logger(__name__)


class AuditSealer:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.maker = maker
        self.interval_seconds = interval_seconds
        self.clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Seal until ``stop`` is set."""
        while not stop.is_set():
            try:
                sealed = await run_audit_seal_pass(self.maker, self.clock())
                if sealed:
                    log.info("audit_sealed", events=sealed)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("audit_seal_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_seconds)
