"""The ingestion loop against a real Dovecot: mail in the mailbox becomes tickets, nothing is
lost or duplicated when the server restarts or the reader is killed at the worst moment, and
each mailbox has one reader among several workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.crypto import encrypt
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.ingest import poller
from app.ingest.imap import ImapClient
from app.ingest.models import InboundMail, InboundStatus
from app.ingest.poller import MailboxReader
from app.ingest.supervisor import IngestSupervisor
from app.mailboxes.models import AfterImport, ImapSecurity, Mailbox, MailboxAuth, MailboxStatus
from app.tickets.models import Message, Ticket
from tests.helpers import build_mail
from tests.mailserver import Dovecot, MailUser

SECRET = "loop-secret-" + "x" * 40


@dataclass
class World:
    engine: AsyncEngine
    maker: async_sessionmaker[AsyncSession]
    settings: Settings
    mailbox_id: int
    user: MailUser
    dovecot: Dovecot

    async def count(self, model: Any, *where: Any) -> int:
        async with self.maker() as session:
            return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    async def processed(self) -> int:
        return await self.count(
            InboundMail,
            InboundMail.status.in_([InboundStatus.processed, InboundStatus.duplicate]),
        )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:  # noqa: ASYNC109 - a test deadline, not a cancellation API
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def world(
    empty_database_url: str, dovecot: Dovecot, imap_user: MailUser, tmp_path: Path
) -> AsyncIterator[World]:
    engine = create_engine(empty_database_url, pool_size=10)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    settings = Settings(
        database_url=empty_database_url,
        data_dir=tmp_path,
        secret_key=SECRET,
        mailbox_rescan_seconds=0.3,
        imap_timeout_seconds=5,
    )
    async with maker.begin() as session:
        mailbox = Mailbox(
            name="Support",
            imap_host=dovecot.host,
            imap_port=dovecot.port,
            imap_security=ImapSecurity.none,
            username=imap_user.address,
            auth_method=MailboxAuth.password,
            password_encrypted=encrypt(SECRET, imap_user.password),
            folders=["INBOX"],
            addresses=[imap_user.address],
            poll_interval_seconds=30,
        )
        session.add(mailbox)
        await session.flush()
        mailbox_id = mailbox.id
    yield World(engine, maker, settings, mailbox_id, imap_user, dovecot)
    await engine.dispose()


@contextlib.asynccontextmanager
async def running(world: World) -> AsyncIterator[IngestSupervisor]:
    supervisor = IngestSupervisor(world.engine, world.maker, world.settings)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield supervisor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def mails(count: int, prefix: str) -> list[bytes]:
    return [
        build_mail(
            message_id=f"<{prefix}-{n}@example.dk>", subject=f"Sag {n}: ærgerligt", body=f"Hej {n}"
        )
        for n in range(count)
    ]


async def test_mail_becomes_tickets_is_flagged_and_replies_thread(world: World) -> None:
    uids = world.dovecot.append(world.user.address, mails(3, "new"))
    async with running(world):
        await eventually(lambda: _equals(world.processed(), 3))
        assert await world.count(Ticket) == 3
        await eventually(lambda: _all_seen(world, uids))
        reply = build_mail(
            message_id="<svar@example.dk>",
            subject="Re: Sag 0: ærgerligt",
            headers={"In-Reply-To": "<new-0@example.dk>"},
        )
        world.dovecot.append(world.user.address, reply)
        # Dovecot announces new mail to the idling reader about 0.5 s after it arrives.
        await eventually(lambda: _equals(world.processed(), 4), timeout=10)
    assert await world.count(Ticket) == 3
    async with world.maker() as session:
        status = await session.get(MailboxStatus, world.mailbox_id)
        assert status is not None
        assert status.state.value == "ok"
        assert status.last_success_at is not None


async def test_a_dovecot_restart_loses_nothing(world: World) -> None:
    world.dovecot.append(world.user.address, mails(1, "before"))
    async with running(world):
        await eventually(lambda: _equals(world.processed(), 1))
        world.dovecot.restart()
        world.dovecot.append(world.user.address, mails(2, "after"))
        await eventually(lambda: _equals(world.processed(), 3), timeout=40)
    assert await world.count(Ticket) == 3
    assert await world.count(InboundMail) == 3


async def test_killed_between_commit_and_flag_nothing_is_lost_or_doubled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    uids = world.dovecot.append(world.user.address, mails(2, "crash"))
    never = asyncio.Event()

    async def hang(self: ImapClient, uids: Any) -> None:
        await never.wait()

    monkeypatch.setattr(ImapClient, "mark_seen", hang)
    reader = MailboxReader(world.mailbox_id, world.maker, world.settings, reader_name="doomed")
    task = asyncio.create_task(reader.run())
    await eventually(lambda: _equals(world.processed(), 2))
    await asyncio.sleep(0.2)
    task.cancel()  # the process dies: committed, but the server was never told
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not any("\\Seen" in world.dovecot.flags(world.user.address, uid) for uid in uids)

    monkeypatch.undo()
    async with running(world):
        await eventually(lambda: _all_seen(world, uids))
    assert await world.count(InboundMail) == 2
    assert await world.count(Ticket) == 2


async def test_killed_between_storing_and_processing_the_mail_is_processed_later(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.dovecot.append(world.user.address, mails(1, "stored"))
    never = asyncio.Event()

    async def hang(*args: Any) -> None:
        await never.wait()

    monkeypatch.setattr(poller.ingest, "process_or_quarantine", hang)
    reader = MailboxReader(world.mailbox_id, world.maker, world.settings, reader_name="doomed")
    task = asyncio.create_task(reader.run())
    await eventually(lambda: _equals(world.count(InboundMail), 1))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await world.processed() == 0

    monkeypatch.undo()
    async with running(world):
        await eventually(lambda: _equals(world.processed(), 1))
    assert await world.count(Ticket) == 1
    assert await world.count(Message) == 1


async def test_one_reader_per_mailbox_and_another_worker_takes_over(world: World) -> None:
    first = IngestSupervisor(world.engine, world.maker, world.settings)
    stop_first = asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    await eventually(lambda: _true(world.mailbox_id in first.readers))
    async with running(world) as second:
        await asyncio.sleep(1.0)  # a few scans: the second must not get the mailbox
        assert world.mailbox_id not in second.readers
        stop_first.set()  # the first worker goes away
        await asyncio.wait_for(first_task, 30)
        await eventually(lambda: _true(world.mailbox_id in second.readers), timeout=10)
        world.dovecot.append(world.user.address, mails(1, "takeover"))
        await eventually(lambda: _equals(world.processed(), 1))
    assert await world.count(Ticket) == 1


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _true(value: bool) -> bool:
    return value


async def _all_seen(world: World, uids: list[int]) -> bool:
    flags = await asyncio.to_thread(
        lambda: [world.dovecot.flags(world.user.address, uid) for uid in uids]
    )
    return all("\\Seen" in f for f in flags)


async def test_a_mailbox_of_thousands_is_read_completely(world: World) -> None:
    """Thousands of waiting mails: fetched in batches (a large IMAP response would crash the
    client library's parser), every one a ticket, every one flagged."""
    count = int(os.environ.get("TICKETRY_TEST_BULK_MAILS", "3000"))
    world.dovecot.append(world.user.address, mails(count, "bulk"))
    started = time.monotonic()
    async with running(world):
        await eventually(lambda: _equals(world.processed(), count), timeout=600)
        await eventually(
            lambda: _equals(
                world.count(InboundMail, InboundMail.handled_on_server_at.is_not(None)), count
            ),
            timeout=60,
        )
    elapsed = time.monotonic() - started
    assert await world.count(Ticket) == count
    seen = await asyncio.to_thread(world.dovecot.uids, world.user.address)
    assert len(seen) == count
    print(f"{count} mails in {elapsed:.1f} s ({count / elapsed:.0f}/s)")


async def test_a_failing_mailbox_is_shown_failing_and_does_not_stop_the_others(
    world: World, dovecot: Dovecot
) -> None:
    async with world.maker.begin() as session:
        broken = Mailbox(
            name="Forkert kodeord",
            imap_host=dovecot.host,
            imap_port=dovecot.port,
            imap_security=ImapSecurity.none,
            username=world.user.address,
            auth_method=MailboxAuth.password,
            password_encrypted=encrypt(SECRET, "not the password"),
            poll_interval_seconds=30,
        )
        session.add(broken)
        await session.flush()
        broken_id = broken.id
    world.dovecot.append(world.user.address, mails(1, "works"))
    async with running(world):
        await eventually(lambda: _equals(world.processed(), 1))

        async def failing() -> bool:
            async with world.maker() as session:
                status = await session.get(MailboxStatus, broken_id)
                return status is not None and status.consecutive_failures >= 2

        await eventually(failing, timeout=20)
    async with world.maker() as session:
        status = await session.get(MailboxStatus, broken_id)
        assert status is not None
        assert status.state.value == "failing"
        assert status.last_error
        assert status.last_success_at is None


async def test_several_folders_are_polled_and_mail_can_be_moved_away(world: World) -> None:
    """With more than one folder the reader polls (IDLE watches one folder); `move` takes
    handled mail out of the folders it reads."""
    async with world.maker.begin() as session:
        mailbox = await session.get(Mailbox, world.mailbox_id)
        assert mailbox is not None
        mailbox.folders = ["INBOX", "Reklamationer – Å"]
        mailbox.poll_interval_seconds = 1
        mailbox.after_import = AfterImport.move
        mailbox.move_to_folder = "Behandlet"
    world.dovecot.append(world.user.address, mails(1, "indbakke"))
    async with running(world):
        await eventually(lambda: _equals(world.processed(), 1))
        world.dovecot.append(
            world.user.address, mails(1, "reklamation"), folder="Reklamationer – Å"
        )
        await eventually(lambda: _equals(world.processed(), 2), timeout=10)

        async def moved() -> bool:
            return await asyncio.to_thread(
                lambda: len(world.dovecot.uids(world.user.address, "Behandlet")) == 2
            )

        await eventually(moved)
    assert await asyncio.to_thread(world.dovecot.uids, world.user.address) == []
