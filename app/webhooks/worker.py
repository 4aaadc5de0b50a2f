"""The webhook worker: fans new events out into deliveries and posts them, in every worker
process at once.

An endpoint is locked (``FOR NO KEY UPDATE SKIP LOCKED`` on its webhook row) while one of its
deliveries is posted, and the outcome is committed in that same transaction: so two workers
never post to one endpoint at the same time, each endpoint gets its events in order (its
oldest pending delivery first, later ones wait while it is retried), and a worker that dies
before committing leaves the delivery pending for the next one. A post the endpoint took and
a commit that never came is the one case that posts twice; it carries the same ``webhook-id``,
which consumers use to drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.webhooks import sending, service
from app.webhooks.service import WebhookConfig

log = structlog.get_logger(__name__)


class WebhookWorker:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        config: WebhookConfig,
        *,
        senders: int = 4,
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.maker = maker
        self.config = config
        self.senders = senders
        self.poll_seconds = poll_seconds
        self.clock = clock

    def client(self) -> httpx.AsyncClient:
        return sending.http_client(self.config.timeout_seconds, self.config.policy)

    async def fan_out(self) -> int:
        """Create the deliveries of new events; how many (0 when another worker is at it)."""
        async with self.maker() as session, session.begin():
            return await service.fan_out(session, self.clock()) or 0

    async def deliver_one(self, client: httpx.AsyncClient) -> bool:
        """Attempt the due delivery of one endpoint, if any; returns whether there was one."""
        async with self.maker() as session, session.begin():
            now = self.clock()
            due = await service.claim_due(session, now)
            if due is None:
                return False
            try:
                outcome = await service.attempt(client, due, now, self.config)
            except Exception as exc:
                # E.g. a secret that no longer decrypts after the secret key changed: the
                # attempt is counted (retried, and the webhook switched off in the end) rather
                # than the same delivery crashing every sender forever.
                log.exception("webhook_attempt_crashed", delivery_id=due.delivery.id)
                outcome = sending.Attempt(None, None, f"could not be sent: {exc!r}"[:1000])
            await service.record_attempt(session, due, outcome, now, self.config)
            if outcome.delivered:
                log.info(
                    "webhook_delivered", webhook_id=due.webhook.id, delivery_id=due.delivery.id
                )
            return True

    async def deliver_due(self) -> int:
        """Fan out, then attempt every delivery due now (one sender); for the CLI and tests.
        Returns the number of attempts."""
        await self.fan_out()
        attempts = 0
        async with self.client() as client:
            while await self.deliver_one(client):
                attempts += 1
        return attempts

    async def _sender(self, stop: asyncio.Event, client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                await self.fan_out()
                busy = await self.deliver_one(client)
                while busy and not stop.is_set():
                    busy = await self.deliver_one(client)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("webhooks_failed", error=str(exc))
            except Exception:  # a sender must outlive any one failure
                log.exception("webhooks_crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; a delivery in hand is finished first."""
        log.info("webhooks_started", senders=self.senders)
        async with self.client() as client:
            await asyncio.gather(*(self._sender(stop, client) for _ in range(self.senders)))
        log.info("webhooks_stopped")
