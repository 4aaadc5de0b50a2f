"""Runs a reader for every active mailbox that no other process reads.

A PostgreSQL session-level advisory lock per mailbox, held on a connection of its own for as
long as the reader runs, makes each mailbox have one reader across all worker processes and
machines; when a process dies its connection closes, the lock goes, and another worker takes
the mailbox over at its next scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.core.config import Settings
from app.core.logging import get_logger
from app.db.locks import try_session_lock
from app.ingest.poller import MailboxReader
from app.mailboxes import service as mailboxes

log = get_logger(__name__)

MAILBOX_LOCK_NAMESPACE = 74_152_003
"""First key of the two-key advisory lock; the second is the mailbox id."""


class IngestSupervisor:
    def __init__(
        self,
        engine: AsyncEngine,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        self.engine = engine
        # Each reader holds its lock on a connection of its own for as long as it reads; these
        # are kept out of the pool the API and the readers' work share, so that many
        # mailboxes cannot starve it.
        self.lock_engine = create_async_engine(engine.url, poolclass=NullPool)
        self.maker = maker
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.readers: dict[int, tuple[MailboxReader, asyncio.Task[None]]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        log.info("ingest_started", reader=self.name)
        try:
            while not stop.is_set():
                try:
                    await self._scan()
                except (SQLAlchemyError, OSError) as exc:
                    log.warning("ingest_scan_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.mailbox_rescan_seconds)
        finally:
            await self.shutdown()

    async def _scan(self) -> None:
        for mailbox_id in [i for i, (_, task) in self.readers.items() if task.done()]:
            del self.readers[mailbox_id]
        async with self.maker() as session:
            active = [m.id for m in await mailboxes.list_active(session)]
        for mailbox_id in active:
            if mailbox_id not in self.readers:
                await self._try_start(mailbox_id)

    async def _try_start(self, mailbox_id: int) -> None:
        connection = await self.lock_engine.connect()
        try:
            locked = await try_session_lock(connection, MAILBOX_LOCK_NAMESPACE, mailbox_id)
        except BaseException:
            await connection.close()
            raise
        if not locked:
            await connection.close()
            return

        async def still_owner() -> bool:
            try:
                await connection.scalar(select(1))
                await connection.commit()
            except (SQLAlchemyError, OSError):
                return False
            return True

        reader = MailboxReader(
            mailbox_id, self.maker, self.settings, reader_name=self.name, still_owner=still_owner
        )
        task = asyncio.create_task(self._read(reader, connection), name=f"mailbox-{mailbox_id}")
        self.readers[mailbox_id] = (reader, task)
        log.info("mailbox_reader_started", mailbox_id=mailbox_id, reader=self.name)

    async def _read(self, reader: MailboxReader, connection: AsyncConnection) -> None:
        try:
            await reader.run()
        except Exception:
            log.exception("mailbox_reader_crashed", mailbox_id=reader.mailbox_id)
        finally:
            # The lock connection is not pooled: closing it releases the lock.
            with contextlib.suppress(SQLAlchemyError, OSError):
                await connection.close()
            log.info("mailbox_reader_stopped", mailbox_id=reader.mailbox_id)

    async def shutdown(self) -> None:
        """Let every reader finish the mail in hand, then stop; a reader still busy after the
        grace period is cancelled (safe: every step is committed before the next)."""
        for reader, _ in self.readers.values():
            reader.stop.set()
        tasks = [task for _, task in self.readers.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.readers.clear()
        await self.lock_engine.dispose()
