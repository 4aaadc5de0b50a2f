"""The background work of `ticketry serve` and `ticketry worker`: reading mailboxes, sending
the outbox, delivering webhooks and sealing the audit chain, side by side in one event loop,
until told to stop."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.worker import AuditSealer
from app.core.config import Settings
from app.ingest.poller import tls_context
from app.ingest.supervisor import IngestSupervisor
from app.jobs.worker import BulkJobWorker
from app.outbound.service import OutboundConfig
from app.outbound.worker import OutboxWorker
from app.scheduler.worker import Scheduler, passes
from app.webhooks.service import WebhookConfig
from app.webhooks.worker import WebhookWorker


async def run_background_work(
    engine: AsyncEngine,
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """Runs until ``stop`` is set; each part then finishes the mail in hand."""
    supervisor = IngestSupervisor(engine, maker, settings)
    outbox = OutboxWorker(
        maker,
        OutboundConfig.from_settings(settings),
        senders=settings.outbound_senders,
        smtp_timeout=settings.smtp_timeout_seconds,
        ssl_context=tls_context(settings),
    )
    webhooks = WebhookWorker(
        maker, WebhookConfig.from_settings(settings), senders=settings.webhook_senders
    )
    bulk_jobs = BulkJobWorker(
        maker, OutboundConfig.from_settings(settings), batch_size=settings.bulk_batch_size
    )
    scheduler = Scheduler(
        maker,
        passes(OutboundConfig.from_settings(settings), stop),
        interval_seconds=settings.scheduler_interval_seconds,
    )
    await asyncio.gather(
        supervisor.run(stop),
        outbox.run(stop),
        webhooks.run(stop),
        AuditSealer(maker).run(stop),
        bulk_jobs.run(stop),
        scheduler.run(stop),
    )
