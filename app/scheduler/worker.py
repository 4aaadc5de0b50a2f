"""The scheduler: every few seconds, the time-based passes one after another, in every worker
process at once.

Each pass claims its rows with ``FOR UPDATE SKIP LOCKED`` in batches, one transaction per
batch, so processes running the scheduler side by side share the work and handle each due
item once; a process that dies leaves its batch to the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.idempotency import run_idempotency_purge_pass
from app.api.rate_limits import run_rate_limit_purge_pass
from app.core.clock import utcnow
from app.followups.scheduler import run_follow_up_pass
from app.gdpr.retention import run_retention_pass
from app.incidents.scheduler import run_proactive_update_pass
from app.outbound.service import OutboundConfig
from app.scheduler.service import run_automation_pass
from app.sla.scheduler import run_sla_pass

log = structlog.get_logger(__name__)

PassFunction = Callable[[async_sessionmaker[AsyncSession], datetime], Awaitable[int]]
"""Does what is due at the moment given; returns how many items it handled."""


@dataclass(frozen=True)
class PassResult:
    name: str
    handled: int
    seconds: float


def passes(
    config: OutboundConfig, stop: asyncio.Event | None = None
) -> list[tuple[str, PassFunction]]:
    """The passes in the order they run: SLA targets first, so that the scheduled rules see
    the breaches of this moment."""
    return [
        ("sla", partial(run_sla_pass, config=config)),
        ("automations", partial(run_automation_pass, config=config, stop=stop)),
        ("follow_ups", run_follow_up_pass),
        ("proactive_updates", partial(run_proactive_update_pass, config=config)),
        ("retention", run_retention_pass),
        ("idempotency_purge", run_idempotency_purge_pass),
        ("rate_limit_purge", run_rate_limit_purge_pass),
    ]


class Scheduler:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        passes: Sequence[tuple[str, PassFunction]],
        *,
        interval_seconds: float = 30,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.maker = maker
        self.passes = passes
        self.interval_seconds = interval_seconds
        self.clock = clock

    async def run_once(
        self,
        now: datetime | None = None,
        stop: asyncio.Event | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> list[PassResult]:
        """Each pass once at ``now`` (the clock's time when None), until ``stop`` is set;
        ``on_start`` hears the name of each pass as it begins."""
        moment = now or self.clock()
        results = []
        for name, run in self.passes:
            if stop is not None and stop.is_set():
                break
            if on_start is not None:
                on_start(name)
            results.append(await self._timed(name, run, moment))
        return results

    async def _timed(self, name: str, run: PassFunction, moment: datetime) -> PassResult:
        started = time.perf_counter()
        handled = await run(self.maker, moment)
        return PassResult(name, handled, time.perf_counter() - started)

    async def _run_passes(self, stop: asyncio.Event) -> None:
        """One round; a pass that fails (the database gone for a moment, a bug) is logged with
        its traceback and the others still run: it is tried again next round. Nothing a pass
        raises reaches the worker, whose other parts share its event loop."""
        moment = self.clock()
        for name, run in self.passes:
            if stop.is_set():
                return
            try:
                result = await self._timed(name, run, moment)
            except Exception:
                log.exception("scheduler_pass_failed", name=name)
                continue
            if result.handled:
                log.info(
                    "scheduler_pass",
                    name=name,
                    handled=result.handled,
                    seconds=round(result.seconds, 3),
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Run the passes every interval until ``stop`` is set; a batch in hand is finished
        first."""
        log.info("scheduler_started", interval_seconds=self.interval_seconds)
        while not stop.is_set():
            await self._run_passes(stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_seconds)
        log.info("scheduler_stopped")
