"""Bring a mailbox's history along: .eml files, an mbox, or a Maildir, through the same
pipeline as live mail (so threading, duplicates and quarantine work the same)."""

from __future__ import annotations

import asyncio
import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.ingest import service as ingest
from app.ingest.models import InboundStatus


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


def open_source(path: Path) -> tuple[int, Iterator[bytes]]:
    """How many mails the source holds, and an iterator over their raw bytes (blocking I/O:
    iterate in a thread)."""
    if _is_maildir(path):
        maildir = mailbox.Maildir(path, factory=None, create=False)
        keys = list(maildir.keys())
        return len(keys), (maildir.get_bytes(key) for key in keys)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.eml") if p.is_file())
        return len(files), (p.read_bytes() for p in files)
    if path.is_file() and _looks_like_mbox(path):
        mbox = mailbox.mbox(path, factory=None, create=False)
        keys = list(mbox.keys())
        return len(keys), (mbox.get_bytes(key) for key in keys)
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
