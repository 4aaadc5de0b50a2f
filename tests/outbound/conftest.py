"""Outbound mail against a real SMTP server: a mailbox whose SMTP server is the test's sink."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.crypto import encrypt
from app.ingest import service as ingest
from app.mailboxes.models import ImapSecurity, Mailbox, MailboxAuth, SmtpSecurity
from app.outbound.service import OutboundConfig
from app.outbound.worker import OutboxWorker
from app.queues.models import Queue
from tests.smtpserver import SmtpSink

LOGIN = ("support@firma.dk", "hemmeligt-kodeord-æøå")


@dataclass
class Outbox:
    mailbox_id: int
    queue_id: int
    sink: SmtpSink
    worker: OutboxWorker
    config: OutboundConfig
    ingest_config: ingest.IngestConfig

    async def mail_in(self, session: AsyncSession, raw: bytes) -> ingest.Outcome:
        """A customer's mail, as the mailbox reader hands it over."""
        inbound_id = await ingest.receive(session, raw, source="imap", mailbox_id=self.mailbox_id)
        return await ingest.process(session, inbound_id, self.ingest_config)


async def make_mailbox(
    session: AsyncSession,
    sink: SmtpSink,
    secret_key: str,
    login: tuple[str, str] = LOGIN,
    **fields: object,
) -> Mailbox:
    """A mailbox sending through the sink with ``login``; ``fields`` override the rest."""
    values: dict[str, object] = {
        "name": f"Support {sink.port}",
        "addresses": [login[0]],
        "imap_host": "127.0.0.1",
        "imap_port": 1,
        "imap_security": ImapSecurity.none,
        "username": login[0],
        "auth_method": MailboxAuth.password,
        "password_encrypted": encrypt(secret_key, login[1]),
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "smtp_security": SmtpSecurity.none,
        "from_name": "Firma Kundeservice",
    }
    mailbox = Mailbox(**{**values, **fields})
    session.add(mailbox)
    await session.flush()
    return mailbox


def worker_on(connection: AsyncConnection, config: OutboundConfig) -> OutboxWorker:
    """A worker whose transactions are savepoints of the test's rolled-back transaction."""
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    return OutboxWorker(maker, config, smtp_timeout=5)


@pytest.fixture
async def outbox(
    session: AsyncSession, connection: AsyncConnection, smtp_sink: SmtpSink, settings: Settings
) -> Outbox:
    """A mailbox sending through the sink (which asks for the mailbox's IMAP login, as a
    provider's SMTP server does), a queue answered from it, and a worker on the test's
    transaction; the same secret key as the API's, so our Message-IDs are recognised."""
    smtp_sink.login = LOGIN
    await smtp_sink.stop()
    await smtp_sink.start()
    config = replace(OutboundConfig.from_settings(settings), max_attempts=3)
    ingest_config = ingest.IngestConfig.from_settings(settings)
    # Acknowledgements are switched on where a test is about them.
    mailbox = await make_mailbox(session, smtp_sink, config.secret_key, acknowledge=False)
    queue = Queue(name=f"Kundeservice {smtp_sink.port}", mailbox_id=mailbox.id)
    session.add(queue)
    await session.flush()
    return Outbox(
        mailbox.id, queue.id, smtp_sink, worker_on(connection, config), config, ingest_config
    )
