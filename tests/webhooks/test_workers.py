"""Two worker processes on one committed database: every event reaches the endpoint once."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from app.agents.models import AgentRole
from app.auth.schemas import Principal
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.events.models import Event
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from app.webhooks.schemas import WebhookCreate
from app.webhooks.service import WebhookConfig
from app.webhooks.worker import WebhookWorker
from tests.webhooks.receiver import Receiver

ADMIN = Principal(agent_id=None, label="test", role=AgentRole.admin)


async def test_two_workers_deliver_each_event_once_and_in_order(
    empty_database_url: str, receiver: Receiver, config: WebhookConfig
) -> None:
    engine = create_engine(empty_database_url, pool_size=10)
    try:
        await upgrade_to_head(engine)
        maker = create_sessionmaker(engine)
        async with maker.begin() as session:
            for _ in range(3):
                data = WebhookCreate(url=receiver.url, event_types=["*"])
                await service.create_webhook(session, ADMIN, data, config)
        async with maker.begin() as session:
            session.add_all(
                Event(type="ticket.created", entity="ticket", entity_id=n, data={"n": n})
                for n in range(40)
            )
        receiver.answers = [500, 200, 503]  # some retries (due at once: see retry_seconds)
        fast = WebhookConfig(config.secret_key, config.policy, 2, retry_seconds=0.01)
        workers = [WebhookWorker(maker, fast, senders=3, poll_seconds=0.02) for _ in range(2)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        async with asyncio.timeout(30):
            while True:
                async with maker() as session:
                    statuses = Counter(await session.scalars(select(WebhookDelivery.status)))
                if statuses[WebhookDeliveryStatus.delivered] == 120:
                    break
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await engine.dispose()

    delivered = receiver.received
    per_message = Counter(r.headers["webhook-id"] for r in delivered)
    assert len(per_message) == 120
    assert sum(per_message.values()) == 122  # two retried after 5xx, the rest once
    by_endpoint: dict[str, list[int]] = {}
    for request in delivered:
        endpoint = request.headers["webhook-id"].rsplit("_", 1)[1]
        by_endpoint.setdefault(endpoint, []).append(request.json["id"])
    for ids in by_endpoint.values():
        assert ids == sorted(ids)


async def test_an_endpoint_waiting_for_a_retry_does_not_hold_up_the_others(
    empty_database_url: str, receiver: Receiver, config: WebhookConfig
) -> None:
    """Two transactions whose events are numbered against their order in the feed: the
    failing endpoint's first delivery in line is not its lowest event id."""
    healthy = Receiver()
    await healthy.start()
    engine = create_engine(empty_database_url, pool_size=4)
    try:
        await upgrade_to_head(engine)
        maker = create_sessionmaker(engine)
        async with maker.begin() as session:
            for url in (receiver.url, healthy.url):
                data = WebhookCreate(url=url, event_types=["*"])
                await service.create_webhook(session, ADMIN, data, config)
        async with maker() as earlier, maker() as later:
            await earlier.execute(select(func.pg_current_xact_id()))  # first in the feed
            later.add(Event(type="ticket.created", entity="ticket", entity_id=1, data={}))
            await later.flush()  # the lower event id
            earlier.add(Event(type="ticket.created", entity="ticket", entity_id=2, data={}))
            await earlier.commit()
            await later.commit()
        receiver.answers = [500] * 10

        worker = WebhookWorker(maker, config)
        # Events are fanned out once every transaction older than theirs has ended, in any
        # database of the server.
        created = 0
        async with asyncio.timeout(30):
            while created < 4:
                created += await worker.fan_out()
                await asyncio.sleep(0.02)
        await worker.deliver_due()
        await worker.deliver_due()
    finally:
        await engine.dispose()
        await healthy.stop()

    assert [r.json["entity_id"] for r in receiver.received] == [2]  # then waits for the retry
    assert [r.json["entity_id"] for r in healthy.received] == [2, 1]  # the feed's order
