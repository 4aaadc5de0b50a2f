from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.core.config import Settings
from app.jobs.worker import BulkJobWorker
from app.outbound.service import OutboundConfig
from app.queues.models import Queue, queue_grants
from tests.conftest import Caller, MakeAgent


def worker_on(
    connection: AsyncConnection,
    settings: Settings,
    *,
    poll_seconds: float = 1.0,
    clock: Callable[[], datetime] = utcnow,
) -> BulkJobWorker:
    """A worker whose transactions are savepoints of the test's rolled-back transaction, in
    batches of two (so a few tickets take several)."""
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    config = OutboundConfig.from_settings(settings)
    return BulkJobWorker(maker, config, batch_size=2, poll_seconds=poll_seconds, clock=clock)


@dataclass
class Desk:
    """Two queues, an agent who asks for bulk changes and a partner granted the first queue."""

    support: int
    billing: int
    agent: Caller
    partner: Caller


@pytest.fixture
async def desk(session: AsyncSession, make_agent: MakeAgent) -> Desk:
    support, billing = Queue(name="Kundeservice"), Queue(name="Fakturering")
    session.add_all([support, billing])
    await session.flush()
    partner = await make_agent("external")
    await session.execute(insert(queue_grants).values(queue_id=support.id, agent_id=partner.id))
    return Desk(support.id, billing.id, await make_agent("agent"), partner)


@pytest.fixture
def worker(connection: AsyncConnection, settings: Settings) -> BulkJobWorker:
    return worker_on(connection, settings)
