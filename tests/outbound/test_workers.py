"""Several worker processes on one committed outbox: each mail is sent once, a stopped worker
finishes the mail in hand, and a killed one loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.agents.models import Agent, AgentRole
from app.auth.schemas import Principal
from app.core.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.outbound import service as outbound
from app.outbound.models import DeliveryStatus, OutboundMail
from app.outbound.service import OutboundConfig
from app.outbound.worker import OutboxWorker
from app.queues.models import Queue
from app.routing import service as routing
from app.tickets.schemas import CustomerRef, FirstMessage, MessageCreate, TicketCreate
from tests.outbound.conftest import LOGIN, make_mailbox
from tests.smtpserver import SmtpSink


@dataclass
class World:
    engine: AsyncEngine
    maker: async_sessionmaker[AsyncSession]
    config: OutboundConfig
    sink: SmtpSink

    def worker(self) -> OutboxWorker:
        return OutboxWorker(self.maker, self.config, smtp_timeout=5, poll_seconds=0.05)

    async def statuses(self) -> Counter[DeliveryStatus]:
        async with self.maker() as session:
            return Counter(await session.scalars(select(OutboundMail.status)))


@pytest.fixture
async def world(
    empty_database_url: str, smtp_sink: SmtpSink, settings: Settings
) -> AsyncIterator[World]:
    """A committed database of its own with one ticket, answered from a mailbox whose SMTP
    server is the sink."""
    engine = create_engine(empty_database_url, pool_size=10)
    await upgrade_to_head(engine)
    smtp_sink.login = LOGIN
    await smtp_sink.stop()
    await smtp_sink.start()
    config = OutboundConfig.from_settings(settings)
    yield World(engine, create_sessionmaker(engine), config, smtp_sink)
    await engine.dispose()


async def queue_replies(world: World, count: int) -> None:
    async with world.maker.begin() as session:
        mailbox = await make_mailbox(session, world.sink, world.config.secret_key)
        queue = Queue(name="Kundeservice", mailbox_id=mailbox.id)
        agent = Agent(email="agnete@firma.dk", name="Agnete", role=AgentRole.agent)
        session.add_all([queue, agent])
        await session.flush()
        actor = Principal(agent_id=agent.id, label=agent.email, role=agent.role)
        ticket = await routing.open_ticket(
            session,
            actor,
            TicketCreate(
                subject="Mange svar",
                customer=CustomerRef(email="kunde@example.se"),
                message=FirstMessage(body_text="Hej"),
                queue_id=queue.id,
            ),
            world.config,
        )
        for n in range(count):
            await outbound.post_message(
                session, actor, ticket.id, MessageCreate(body_text=f"Svar nr {n}"), world.config
            )


def message_ids(sink: SmtpSink) -> Counter[str]:
    return Counter(str(mail.message["Message-ID"]) for mail in sink.received)


async def test_two_workers_send_every_mail_exactly_once(world: World) -> None:
    await queue_replies(world, 40)
    first, second = world.worker(), world.worker()
    sent = await asyncio.gather(first.send_due(), second.send_due())

    assert sum(sent) == 40
    assert all(sent), "both workers took part"
    counts = message_ids(world.sink)
    assert len(counts) == 40
    assert set(counts.values()) == {1}
    assert await world.statuses() == Counter({DeliveryStatus.sent: 40})


async def test_a_stopped_worker_finishes_the_mail_in_hand_and_nothing_is_sent_again(
    world: World,
) -> None:
    await queue_replies(world, 1)
    world.sink.hold = asyncio.Event()
    stop = asyncio.Event()
    running = asyncio.create_task(world.worker().run(stop))
    await asyncio.wait_for(world.sink.in_data.wait(), 10)
    stop.set()  # SIGTERM while the server is still taking the mail
    world.sink.hold.set()
    await asyncio.wait_for(running, 10)

    assert await world.statuses() == Counter({DeliveryStatus.sent: 1})
    assert await world.worker().send_due() == 0  # the restarted worker
    assert len(world.sink.received) == 1


async def test_a_killed_worker_loses_nothing(world: World) -> None:
    await queue_replies(world, 1)
    world.sink.hold = asyncio.Event()
    world.sink.data_reply = "421 4.3.2 connection dropped"
    killed = asyncio.create_task(world.worker().send_due())
    await asyncio.wait_for(world.sink.in_data.wait(), 10)
    killed.cancel()  # the process dies before the server took the mail
    with contextlib.suppress(asyncio.CancelledError):
        await killed
    world.sink.hold.set()
    await asyncio.wait_for(world.sink.answered.wait(), 10)
    world.sink.hold, world.sink.data_reply = None, None

    assert await world.statuses() == Counter({DeliveryStatus.queued: 1})
    assert await world.worker().send_due() == 1
    assert len(world.sink.received) == 1
    assert await world.statuses() == Counter({DeliveryStatus.sent: 1})
