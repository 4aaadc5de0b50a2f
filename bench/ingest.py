"""End-to-end ingestion speed: N mails appended to a real Dovecot become tickets.

Starts Dovecot on loopback (Debian's dovecot-imapd, as the tests do), appends N mails to one
mailbox, runs the ingestion supervisor until every mail is a ticket and flagged on the server,
and prints one JSON line: mails per second end to end, and the process's peak memory.
Usage:
    python bench/ingest.py [--mails 2000] [--database-url postgresql://...]
Without --database-url it uses TICKETRY_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432;
it creates and drops its own database `ticketry_bench_ingest`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.config import Settings, async_database_url
from app.core.crypto import encrypt
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.ingest.models import InboundMail
from app.ingest.supervisor import IngestSupervisor
from app.mailboxes.models import ImapSecurity, Mailbox, MailboxAuth
from bench.common import DEFAULT_SERVER, bench_database, wait_for_count
from tests.mailserver import Dovecot

SECRET = "bench-secret-" + "b" * 40
DATABASE = "ticketry_bench_ingest"


def _mail(number: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Kunde {number % 300} <kunde{number % 300}@example.dk>"
    mail["To"] = "support@firma.dk"
    mail["Subject"] = f"Spørgsmål {number} om faktura"
    mail["Message-ID"] = f"<bench-{number}@example.dk>"
    mail.set_content(f"Hej,\n\nmin faktura {number} er forkert. Kan I se på det?\n\nMvh\nKunde")
    return mail.as_bytes(policy=SMTP)


async def main(count: int, server_url: str) -> dict[str, Any]:
    async with bench_database(server_url, DATABASE) as url:
        return await _run(count, url)


async def _run(count: int, url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=10)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    with Dovecot() as dovecot:
        user = dovecot.add_user("support@firma.dk", "bench-password")
        appended = time.perf_counter()
        await asyncio.to_thread(dovecot.append, user.address, [_mail(n) for n in range(count)])
        append_seconds = time.perf_counter() - appended
        async with maker.begin() as session:
            session.add(
                Mailbox(
                    name="Support",
                    imap_host=dovecot.host,
                    imap_port=dovecot.port,
                    imap_security=ImapSecurity.none,
                    username=user.address,
                    auth_method=MailboxAuth.password,
                    password_encrypted=encrypt(SECRET, user.password),
                    addresses=[user.address],
                )
            )
        settings = Settings(database_url=url, secret_key=SECRET, mailbox_rescan_seconds=0.2)
        supervisor = IngestSupervisor(engine, maker, settings)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(supervisor.run(stop))
        await wait_for_count(
            maker,
            select(func.count())
            .select_from(InboundMail)
            .where(InboundMail.handled_on_server_at.is_not(None)),
            count,
        )
        seconds = time.perf_counter() - started
        stop.set()
        await task
    await engine.dispose()
    return {
        "benchmark": "ingest",
        "mails": count,
        "append_seconds": round(append_seconds, 2),
        "ingest_seconds": round(seconds, 2),
        "mails_per_second": round(count / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER,
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.mails, async_database_url(args.database_url)))))
