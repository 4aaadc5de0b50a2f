"""Outbound mail speed: N replies through the outbox to an SMTP sink.

Starts an aiosmtpd sink in a process of its own on loopback (it keeps nothing), writes N
public replies through the service (as the API does: message, headers, outbox row, one
transaction each), then runs the outbox worker until every reply is sent, and prints one
JSON line: replies queued and sent per second, and the process's peak memory.
Usage:
    python bench/outbound.py [--replies 2000] [--senders 4] [--database-url postgresql://...]
Without --database-url it uses TICKETRY_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432;
it creates and drops its own database `ticketry_bench_outbound`.
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

from app.agents.models import Agent, AgentRole
from app.auth.schemas import Principal
from app.core.config import LogLevel, async_database_url
from app.core.crypto import encrypt
from app.core.logging import configure_logging
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.mailboxes.models import ImapSecurity, Mailbox, MailboxAuth, SmtpSecurity
from app.outbound import service as outbound
from app.outbound.models import DeliveryStatus, OutboundMail
from app.outbound.service import OutboundConfig
from app.outbound.worker import OutboxWorker
from app.queues.models import Queue
from app.routing import service as routing
from app.tickets.schemas import CustomerRef, FirstMessage, MessageCreate, TicketCreate
from bench.common import DEFAULT_SERVER, bench_database, wait_for_count

DATABASE = "ticketry_bench_outbound"
CONFIG = OutboundConfig(
    secret_key="bench-secret-" + "b" * 40,
    public_base_url="https://support.firma.dk",
    ticket_number_prefix="#",
)
LOGIN = ("support@firma.dk", "bench-password")
REPLY = (
    "Hej {n},\n\nTak for din henvendelse. Vi har rettet fakturaen, og du får en kreditnota "
    "inden for tre hverdage.\n\nMed venlig hilsen\nÅsa Ørsted\nKundeservice"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


SINK = """
import asyncio, sys
from tests.smtpserver import SmtpSink

async def serve():
    sink = SmtpSink(port=int(sys.argv[1]), login=(sys.argv[2], sys.argv[3]))
    await sink.start()
    await asyncio.Event().wait()

asyncio.run(serve())
"""


def _start_sink(port: int) -> subprocess.Popen[bytes]:
    """The tests' SMTP server (it asks for the login, as a provider's does), in a process of
    its own so that it does not share this one's CPU time."""
    sink = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", SINK, str(port), *LOGIN],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise RuntimeError("the SMTP sink did not start")


async def _queue(maker: Any, replies: int, port: int) -> float:
    async with maker.begin() as session:
        mailbox = Mailbox(
            name="Support",
            imap_host="127.0.0.1",
            imap_port=1,
            imap_security=ImapSecurity.none,
            username=LOGIN[0],
            auth_method=MailboxAuth.password,
            password_encrypted=encrypt(CONFIG.secret_key, LOGIN[1]),
            addresses=["support@firma.dk"],
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security=SmtpSecurity.none,
            acknowledge=False,
        )
        agent = Agent(email="asa@firma.dk", name="Åsa Ørsted", role=AgentRole.agent)
        session.add_all([mailbox, agent])
        await session.flush()
        queue = Queue(name="Faktura", mailbox_id=mailbox.id)
        session.add(queue)
        await session.flush()
        actor = Principal(agent_id=agent.id, label=agent.email, role=agent.role)
        ticket_ids = []
        for n in range(max(replies // 10, 1)):
            ticket = await routing.open_ticket(
                session,
                actor,
                TicketCreate(
                    subject=f"Faktura {n} er forkert",
                    customer=CustomerRef(email=f"kunde{n}@example.dk"),
                    message=FirstMessage(body_text="Min faktura er forkert."),
                    queue_id=queue.id,
                ),
                CONFIG,
            )
            ticket_ids.append(ticket.id)
    started = time.perf_counter()
    for n in range(replies):
        async with maker.begin() as session:
            await outbound.post_message(
                session,
                actor,
                ticket_ids[n % len(ticket_ids)],
                MessageCreate(body_text=REPLY.format(n=n)),
                CONFIG,
            )
    return time.perf_counter() - started


async def main(replies: int, senders: int, server_url: str) -> dict[str, Any]:
    async with bench_database(server_url, DATABASE) as url:
        return await _run(replies, senders, url)


async def _run(replies: int, senders: int, url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=senders + 2)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    port = _free_port()
    sink = _start_sink(port)
    try:
        queue_seconds = await _queue(maker, replies, port)
        worker = OutboxWorker(maker, CONFIG, senders=senders, poll_seconds=0.05)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        await wait_for_count(
            maker,
            select(func.count())
            .select_from(OutboundMail)
            .where(OutboundMail.status == DeliveryStatus.sent),
            replies,
        )
        send_seconds = time.perf_counter() - started
        stop.set()
        await task
    finally:
        sink.terminate()
        sink.wait(10)
        await engine.dispose()
    return {
        "benchmark": "outbound",
        "replies": replies,
        "senders": senders,
        "queued_per_second": round(replies / queue_seconds, 1),
        "sent_per_second": round(replies / send_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    args = parser.parse_args()
    configure_logging(LogLevel.warning)  # one JSON line of figures on stdout, not a log per mail
    figures = asyncio.run(main(args.replies, args.senders, async_database_url(args.database_url)))
    print(json.dumps(figures))
