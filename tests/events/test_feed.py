"""The feed on a committed database of its own: it pages in order, resumes from a cursor, and
never skips or repeats an event while transactions commit out of order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.schemas import system_principal
from app.core.errors import Invalid
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.events import service as events
from app.events.models import Event
from app.events.schemas import EventData, MailQuarantined, RoutingNotify

READER = system_principal("feed reader")
Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def maker(empty_database_url: str) -> AsyncIterator[Maker]:
    engine = create_engine(empty_database_url, pool_size=5)
    await upgrade_to_head(engine)
    yield create_sessionmaker(engine)
    await engine.dispose()


def notify(number: int) -> RoutingNotify:
    return RoutingNotify(ticket_id=number, event=f"e{number}", note=None)


def quarantined(number: int) -> MailQuarantined:
    return MailQuarantined(inbound_id=number, mailbox_id=None, reason="too big")


async def commit(maker: Maker, *data: EventData) -> list[int]:
    """Each event in a transaction of its own; their ids."""
    ids = []
    for item in data:
        async with maker.begin() as session:
            ids.append((await events.emit(session, item)).id)
    return ids


async def settle(maker: Maker) -> None:
    """Wait until every transaction that wrote an event has ended on the whole server (a test
    run beside this one may hold the feed back for a moment: that is the feed working)."""
    async with maker() as session:
        newest = await session.scalar(select(func.max(Event.txid)))
        for _ in range(200):
            oldest_running = await session.scalar(
                text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            )
            await session.rollback()
            if newest is None or oldest_running > newest:
                return
            await asyncio.sleep(0.05)
    pytest.fail("transactions of other sessions kept running for 10 seconds")


async def read(
    maker: Maker, after: str | None, *, types: Sequence[str] = (), limit: int = 50
) -> tuple[list[int], str]:
    async with maker() as session:
        rows, cursor = await events.feed(session, READER, after=after, types=types, limit=limit)
    return [row.id for row in rows], cursor


async def test_the_feed_pages_in_order_resumes_and_filters(maker: Maker) -> None:
    ids = await commit(maker, notify(1), quarantined(2), notify(3), quarantined(4), notify(5))
    await settle(maker)

    pages, cursor = [], None
    for _ in range(3):
        page, cursor = await read(maker, cursor, limit=2)
        pages.append(page)
    assert pages == [ids[0:2], ids[2:4], ids[4:]]
    assert await read(maker, cursor) == ([], cursor)

    [later] = await commit(maker, notify(6))
    await settle(maker)
    assert await read(maker, cursor) == ([later], (await read(maker, None))[1])

    only, _ = await read(maker, None, types=["mail.quarantined"])
    assert only == [ids[1], ids[3]]
    both, _ = await read(maker, None, types=["mail.quarantined", "routing.notify"])
    assert both == [*ids, later]


async def test_a_bad_cursor_or_an_unknown_type_is_refused(maker: Maker) -> None:
    with pytest.raises(Invalid, match="cursor"):
        await read(maker, "bm90IGEgY3Vyc29y")
    with pytest.raises(Invalid, match=r"ticket\.exploded"):
        await read(maker, None, types=["ticket.created", "ticket.exploded"])


async def test_an_event_committed_late_is_served_before_a_later_one_never_skipped(
    maker: Maker,
) -> None:
    await commit(maker, notify(0))
    await settle(maker)
    _, cursor = await read(maker, None)

    early = maker()
    async with early.begin():
        # The first transaction writes first (the lower id), but commits last.
        first = await events.emit(early, notify(1))
        [second] = await commit(maker, notify(2))
        assert first.id < second
        # The second one committed; the first is still running: nothing may be served yet,
        # or a consumer would move past the first one's event for good.
        assert await read(maker, cursor) == ([], cursor)
    await early.close()
    await settle(maker)

    served, after_both = await read(maker, cursor)
    assert served == [first.id, second]
    assert await read(maker, after_both) == ([], after_both)
    # Paged one at a time, the same two, once each.
    one, cursor = await read(maker, cursor, limit=1)
    two, cursor = await read(maker, cursor, limit=1)
    assert [*one, *two] == served
    assert cursor == after_both
