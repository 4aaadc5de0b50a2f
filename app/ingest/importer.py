"""Bring a mailbox's history along: .eml files, an mbox, or a Maildir, through the same
pipeline as live mail (so threading, duplicates and quarantine work the same)."""

from __future__ import annotations

import asyncio
import mailbox
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.ingest import service as ingest
from app.ingest.models import InboundStatus

K = TypeVar("K")


class ImportSourceError(Exception):
    """The path is no mail source we can read; the message says what is accepted."""


@dataclass
class ImportSummary:
    read: int = 0
    new_tickets: int = 0
    threaded: int = 0
    """Added to an existing ticket."""
    duplicates: int = 0
    quarantined: int = 0


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / part).is_dir() for part in ("cur", "new", "tmp"))


def _looks_like_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


HEADER_BYTES = 64 * 1024
"""Enough of a mail to read its Date header."""


def _written_at(raw: bytes) -> float:
    """When the mail says it was written, as a timestamp; undated mail sorts last."""
    try:
        date = BytesHeaderParser().parsebytes(raw[:HEADER_BYTES]).get("Date")
        return parsedate_to_datetime(str(date)).timestamp() if date else math.inf
    except (TypeError, ValueError, IndexError, OverflowError):
        return math.inf


def _by_date(keys: list[K], load: Callable[[K], bytes]) -> Iterator[bytes]:
    """The mails oldest first, so an original is filed before the replies to it; the source
    is read twice (dates first) rather than held in memory."""
    order = sorted(range(len(keys)), key=lambda i: (_written_at(load(keys[i])), i))
    return (load(keys[i]) for i in order)


def open_source(path: Path) -> tuple[int, Iterator[bytes]]:
    """How many mails the source holds, and an iterator over their raw bytes, oldest first
    (blocking I/O: call and iterate in a thread)."""
    if _is_maildir(path):
        maildir = mailbox.Maildir(path, factory=None, create=False)
        maildir_keys = list(maildir.keys())
        return len(maildir_keys), _by_date(maildir_keys, maildir.get_bytes)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.eml") if p.is_file())
        return len(files), _by_date(files, Path.read_bytes)
    if path.is_file() and _looks_like_mbox(path):
        mbox = mailbox.mbox(path, factory=None, create=False)
        mbox_keys = list(mbox.keys())
        return len(mbox_keys), _by_date(mbox_keys, mbox.get_bytes)
    if path.is_file():
        return 1, iter([path.read_bytes()])
    raise ImportSourceError(
        f"{path} does not exist: give a .eml file, an mbox file, a Maildir (with cur/, new/ and "
        "tmp/) or a folder of .eml files"
    )


async def import_mail(
    maker: async_sessionmaker[AsyncSession],
    path: Path,
    config: ingest.IngestConfig,
    *,
    on_total: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[ImportSummary], None] = lambda summary: None,
) -> ImportSummary:
    total, mails = await asyncio.to_thread(open_source, path)
    on_total(total)
    summary = ImportSummary()
    # An earlier import that was cut short left mail stored but not processed: finish it.
    async with maker() as session:
        left_over = await ingest.pending(session, source=ingest.IMPORT_SOURCE)
    for inbound_id in left_over:
        await ingest.process_or_quarantine(maker, inbound_id, config)
    end = object()
    while (raw := await asyncio.to_thread(next, mails, end)) is not end:
        assert isinstance(raw, bytes)
        async with maker.begin() as session:
            inbound_id = await ingest.receive(session, raw, source=ingest.IMPORT_SOURCE)
        outcome = await ingest.process_or_quarantine(maker, inbound_id, config)
        summary.read += 1
        if outcome.status is InboundStatus.duplicate:
            summary.duplicates += 1
        elif outcome.status is InboundStatus.quarantined:
            summary.quarantined += 1
        elif outcome.new_ticket:
            summary.new_tickets += 1
        elif outcome.ticket_id is not None:
            summary.threaded += 1
        on_progress(summary)
    return summary
