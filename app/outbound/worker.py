"""The outbox worker: sends queued mail, in every worker process at once.

Each mail is claimed with ``FOR UPDATE SKIP LOCKED`` and the row stays locked while it is
handed to the SMTP server; its outcome is committed in that same transaction. So two workers
never send one mail, and a worker that dies before committing leaves the mail queued for the
next one. A mail the server took and a commit that never came (the process killed in the
milliseconds between) is the one case that can send twice; it goes with the same Message-ID,
which mail clients use to drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.mailboxes import service as mailboxes
from app.mailboxes.models import Mailbox
from app.outbound import service
from app.outbound.compose import build
from app.outbound.service import OutboundConfig
from app.outbound.smtp import SmtpConnection, SmtpFailure

log = structlog.get_logger(__name__)


class _Connections:
    """One SMTP session per mailbox, kept while there is mail to send; a mailbox whose
    settings changed (a new version) gets a new session."""

    def __init__(self, secret_key: str, timeout: float, ssl_context: ssl.SSLContext | None):
        self.secret_key = secret_key
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._open: dict[int, tuple[int, SmtpConnection]] = {}

    async def get(self, session: AsyncSession, mailbox: Mailbox) -> SmtpConnection:
        known = self._open.get(mailbox.id)
        if known is not None and known[0] == mailbox.version:
            return known[1]
        if known is not None:
            await known[1].quit()
        settings = await mailboxes.smtp_settings(
            session,
            mailbox,
            secret_key=self.secret_key,
            timeout=self.timeout,
            ssl_context=self.ssl_context,
        )
        connection = SmtpConnection(settings)
        self._open[mailbox.id] = (mailbox.version, connection)
        return connection

    async def close(self) -> None:
        for _, connection in self._open.values():
            await connection.quit()
        self._open.clear()


class OutboxWorker:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        config: OutboundConfig,
        *,
        senders: int = 4,
        smtp_timeout: float = 30,
        ssl_context: ssl.SSLContext | None = None,
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.maker = maker
        self.config = config
        self.senders = senders
        self.smtp_timeout = smtp_timeout
        self.ssl_context = ssl_context
        self.poll_seconds = poll_seconds
        self.clock = clock

    def connections(self) -> _Connections:
        return _Connections(self.config.secret_key, self.smtp_timeout, self.ssl_context)

    async def send_one(self, connections: _Connections) -> bool:
        """Send the oldest due mail, if any; returns whether there was one."""
        async with self.maker() as session, session.begin():
            now = self.clock()
            row = await service.claim_due(session, now)
            if row is None:
                return False
            mailbox = await mailboxes.get(session, row.mailbox_id) if row.mailbox_id else None
            try:
                if mailbox is None:
                    raise SmtpFailure(
                        "the mailbox it was to be sent from no longer exists", permanent=True
                    )
                connection = await connections.get(session, mailbox)
                sender, mail = await service.outgoing_mail(session, row, mailbox)
                delivery = await connection.send(build(mail, date=now), sender, mail.recipients)
            except SmtpFailure as failure:
                await service.record_failure(session, row, failure, now, self.config)
            else:
                service.record_sent(row, delivery, now)
                log.info("mail_sent", outbound_id=row.id, message_id=row.message_id)
            return True

    async def send_due(self) -> int:
        """Send every mail due now (one sender); for the CLI and tests."""
        connections = self.connections()
        sent = 0
        try:
            while await self.send_one(connections):
                sent += 1
        finally:
            await connections.close()
        return sent

    async def _sender(self, stop: asyncio.Event) -> None:
        connections = self.connections()
        try:
            while not stop.is_set():
                try:
                    busy = await self.send_one(connections)
                except (SQLAlchemyError, OSError) as exc:
                    log.warning("outbox_failed", error=str(exc))
                    busy = False
                if not busy:
                    # Nothing due: let the SMTP sessions go rather than hold them idle.
                    await connections.close()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            await connections.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; a mail in hand is finished first."""
        log.info("outbox_started", senders=self.senders)
        await asyncio.gather(*(self._sender(stop) for _ in range(self.senders)))
        log.info("outbox_stopped")
