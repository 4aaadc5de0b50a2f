"""Webhook delivery speed: N events fanned out and posted, signed, to a local endpoint.

Starts a minimal HTTP endpoint in a process of its own on loopback (it answers 200),
subscribes webhooks to every event (one path of the endpoint each), writes N events, then runs
the webhook worker until every delivery is made, and prints one JSON line: deliveries per
second and the process's peak memory.
Usage:
    python bench/webhooks.py [--events 2000] [--webhooks 4] [--senders 4] [--database-url ...]
Without --database-url it uses TICKETRY_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432;
it creates and drops its own database `ticketry_bench_webhooks`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.agents.models import AgentRole
from app.auth.schemas import Principal
from app.core.config import LogLevel, async_database_url
from app.core.logging import configure_logging
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.events.models import Event
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from app.webhooks.schemas import WebhookCreate
from app.webhooks.service import WebhookConfig
from app.webhooks.targets import TargetPolicy
from app.webhooks.worker import WebhookWorker
from bench.common import DEFAULT_SERVER, bench_database, wait_for_count

DATABASE = "ticketry_bench_webhooks"
CONFIG = WebhookConfig(
    secret_key="bench-secret-" + "b" * 40, policy=TargetPolicy(allow_private=True)
)
ADMIN = Principal(agent_id=None, label="bench", role=AgentRole.admin)

ENDPOINT = """
import asyncio, sys
from tests.webhooks.receiver import Receiver

async def serve():
    server = await asyncio.start_server(Receiver()._handle, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(serve())
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_endpoint(port: int) -> subprocess.Popen[bytes]:
    """The tests' HTTP endpoint, in a process of its own so it does not share our CPU time."""
    endpoint = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", ENDPOINT, str(port)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return endpoint
        except OSError:
            time.sleep(0.05)
    endpoint.kill()
    raise RuntimeError("the HTTP endpoint did not start")


async def main(events: int, webhooks: int, senders: int, server_url: str) -> dict[str, Any]:
    async with bench_database(server_url, DATABASE) as url:
        return await _run(events, webhooks, senders, url)


async def _run(events: int, webhooks: int, senders: int, url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=senders + 2)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    port = _free_port()
    endpoint = _start_endpoint(port)
    try:
        async with maker.begin() as session:
            for n in range(webhooks):
                target = WebhookCreate(url=f"http://127.0.0.1:{port}/{n}", event_types=["*"])
                await service.create_webhook(session, ADMIN, target, CONFIG)
        async with maker.begin() as session:
            session.add_all(
                Event(type="ticket.created", entity="ticket", entity_id=n, data={"n": n})
                for n in range(events)
            )
        worker = WebhookWorker(maker, CONFIG, senders=senders, poll_seconds=0.05)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        await wait_for_count(
            maker,
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == WebhookDeliveryStatus.delivered),
            events * webhooks,
        )
        seconds = time.perf_counter() - started
        stop.set()
        await task
    finally:
        endpoint.terminate()
        endpoint.wait(10)
        await engine.dispose()
    return {
        "benchmark": "webhooks",
        "events": events,
        "webhooks": webhooks,
        "senders": senders,
        "deliveries_per_second": round(events * webhooks / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--webhooks", type=int, default=4)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    args = parser.parse_args()
    configure_logging(LogLevel.warning)  # one JSON line of figures on stdout, not a log per post
    figures = asyncio.run(
        main(args.events, args.webhooks, args.senders, async_database_url(args.database_url))
    )
    print(json.dumps(figures))
