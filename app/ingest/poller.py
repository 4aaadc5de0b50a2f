"""The loop that reads one mailbox: fetch new mail by UID, store it, process it, then tell
the server. Each step is committed before the next, so a crash anywhere loses nothing and
duplicates nothing: raw mail is stored with the folder's last UID in one transaction,
processing happens in the next, and the server is told only about stored mail."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.logging import get_logger
from app.ingest import service as ingest
from app.ingest.imap import ImapClient, ImapConnectError, ImapError, ImapTimeout
from app.mailboxes import service as mailboxes
from app.mailboxes.models import AfterImport, Mailbox

log = get_logger(__name__)

MAX_BACKOFF_SECONDS = 300.0
IDLE_SECONDS = 60.0
"""Renew IDLE often: well within the 29 minutes servers allow, and a changed mailbox (or a
stop) is noticed within a minute."""


class MailboxChanged(Exception):
    """The mailbox was edited, deactivated or deleted: reading stops, the supervisor restarts
    it with the new settings."""


def tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.imap_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.imap_ca_file))
    return context


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class MailboxReader:
    def __init__(
        self,
        mailbox_id: int,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        reader_name: str,
        still_owner: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.maker = maker
        self.settings = settings
        self.config = ingest.IngestConfig.from_settings(settings)
        self.reader_name = reader_name
        self.still_owner = still_owner
        self.stop = asyncio.Event()
        self.ssl_context = tls_context(settings)

    async def run(self) -> None:
        """Read until stopped or the mailbox changes; reconnect with backoff on failures."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                await self._connected()
                backoff = 1.0
            except MailboxChanged:
                return
            except (ImapError, OSError) as exc:
                log.warning("mailbox_failed", mailbox_id=self.mailbox_id, error=str(exc))
                async with self.maker.begin() as session:
                    await mailboxes.record_failure(
                        session, self.mailbox_id, self.reader_name, str(exc)
                    )
                await _sleep_unless(self.stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _load(self) -> Mailbox:
        async with self.maker.begin() as session:
            mailbox = await mailboxes.get(session, self.mailbox_id)
            if mailbox is None or not mailbox.active:
                raise MailboxChanged
            return mailbox

    async def _connected(self) -> None:
        mailbox = await self._load()
        async with self.maker.begin() as session:
            # May refresh an OAuth token, which is stored: hence its own transaction.
            imap_settings = await mailboxes.imap_settings(
                session,
                mailbox,
                secret_key=self.config.secret_key,
                timeout=self.settings.imap_timeout_seconds,
                batch_size=self.settings.imap_batch_size,
                ssl_context=self.ssl_context,
            )
        client = await ImapClient.connect(imap_settings)
        try:
            while not self.stop.is_set():
                for folder in mailbox.folders:
                    await self._sync_folder(client, mailbox, folder)
                    if self.stop.is_set():
                        return
                async with self.maker.begin() as session:
                    await mailboxes.record_success(session, self.mailbox_id, self.reader_name)
                await self._check_unchanged(mailbox)
                if client.supports_idle and len(mailbox.folders) == 1:
                    idle = asyncio.ensure_future(client.wait_for_changes(IDLE_SECONDS))
                    stopped = asyncio.ensure_future(self.stop.wait())
                    await asyncio.wait({idle, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    stopped.cancel()
                    if not idle.done():
                        idle.cancel()
                        return
                    idle.result()
                else:
                    await _sleep_unless(self.stop, mailbox.poll_interval_seconds)
        finally:
            await client.close()

    async def _check_unchanged(self, mailbox: Mailbox) -> None:
        current = await self._load()
        if current.version != mailbox.version:
            raise MailboxChanged
        if self.still_owner is not None and not await self.still_owner():
            log.warning("mailbox_lock_lost", mailbox_id=self.mailbox_id)
            raise MailboxChanged

    async def _sync_folder(self, client: ImapClient, mailbox: Mailbox, folder: str) -> None:
        info = await client.select(folder)
        async with self.maker.begin() as session:
            uidvalidity, last_uid = await mailboxes.folder_state(session, mailbox.id, folder)
            if uidvalidity != info.uidvalidity:
                # The server renumbered the folder: every UID is new to us. Content dedupe
                # keeps mail we stored before from becoming tickets twice.
                if uidvalidity is not None:
                    log.warning("uidvalidity_changed", mailbox_id=mailbox.id, folder=folder)
                last_uid = 0
                await mailboxes.save_folder_state(
                    session, mailbox.id, folder, info.uidvalidity, last_uid
                )
        await self._tell_server(client, mailbox, folder, info.uidvalidity)
        await self._process_left_over()
        uids = await client.uids_after(last_uid)
        async with contextlib.aclosing(client.fetch(uids)) as fetched:
            await self._store_and_process(fetched, mailbox, folder, info.uidvalidity)
        await self._tell_server(client, mailbox, folder, info.uidvalidity)

    async def _store_and_process(
        self,
        fetched: AsyncIterator[tuple[int, bytes]],
        mailbox: Mailbox,
        folder: str,
        uidvalidity: int,
    ) -> None:
        async for uid, raw in fetched:
            async with self.maker.begin() as session:
                inbound_id = await ingest.receive(
                    session,
                    raw,
                    source="imap",
                    mailbox_id=mailbox.id,
                    folder=folder,
                    uidvalidity=uidvalidity,
                    uid=uid,
                )
                await mailboxes.save_folder_state(session, mailbox.id, folder, uidvalidity, uid)
            await self._process(inbound_id)
            if self.stop.is_set():
                break

    async def _process_left_over(self) -> None:
        async with self.maker() as session:
            left_over = await ingest.pending(session, mailbox_id=self.mailbox_id)
        for inbound_id in left_over:
            await self._process(inbound_id)

    async def _process(self, inbound_id: int) -> None:
        await ingest.process_or_quarantine(self.maker, inbound_id, self.config)

    async def _tell_server(
        self, client: ImapClient, mailbox: Mailbox, folder: str, uidvalidity: int
    ) -> None:
        """Flag, move or delete the mails stored since the server was last told."""
        async with self.maker() as session:
            pairs = await ingest.unhandled_on_server(session, mailbox.id, folder, uidvalidity)
        if not pairs:
            return
        uids = [uid for _, uid in pairs]
        try:
            if mailbox.after_import is AfterImport.move and mailbox.move_to_folder:
                await client.move(uids, mailbox.move_to_folder)
            elif mailbox.after_import is AfterImport.delete:
                await client.delete(uids)
            else:
                await client.mark_seen(uids)
        except (ImapConnectError, ImapTimeout):
            raise
        except ImapError as exc:
            # The server refused (a read-only folder, a move target it will not create): the
            # mail is safe with us, so reading goes on; the next pass tries again.
            log.warning("server_update_refused", mailbox_id=mailbox.id, error=str(exc))
            return
        async with self.maker.begin() as session:
            await ingest.mark_handled_on_server(session, [inbound_id for inbound_id, _ in pairs])
