"""The export on a committed database: it pages every change once in order, moves a changed
row to the end, serves deletions as tombstones, and never skips or repeats a change while
transactions commit out of order."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.customers.models import Customer
from app.export import service
from app.export.schemas import ExportedCustomer, ExportEntity
from app.privacy import service as privacy
from app.tickets.models import Channel, Message, MessageDirection, Ticket
from tests.export.conftest import Maker, settle
from tests.helpers import add_ticket

READER = system_principal("export reader")


async def add_customers(maker: Maker, *names: str) -> list[int]:
    """Each customer in a transaction of its own; their ids."""
    ids = []
    for name in names:
        async with maker.begin() as session:
            customer = Customer(name=name)
            session.add(customer)
            await session.flush()
            ids.append(customer.id)
    return ids


async def export(
    client: httpx.AsyncClient, entity: str, cursor: str | None = None, limit: int = 1000
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = await client.get(f"/api/v1/export/{entity}", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_pages_every_row_once_in_order_and_a_change_moves_it_to_the_end(
    maker: Maker, export_client: httpx.AsyncClient
) -> None:
    ids = await add_customers(maker, "Åse", "Bjørn", "Cecilie", "Dag", "Eir")
    await settle(maker)

    pages = []
    cursor = None
    for _ in range(3):
        page = await export(export_client, "customers", cursor, limit=2)
        pages.append(([item["id"] for item in page["items"]], page["has_more"]))
        cursor = page["next_cursor"]
    assert pages == [(ids[0:2], True), (ids[2:4], True), (ids[4:], False)]
    first = (await export(export_client, "customers"))["items"][0]
    assert first["name"] == "Åse"
    assert first["deleted"] is False
    assert first["emails"] == []
    assert first["version"] == 1
    nothing_new = await export(export_client, "customers", cursor)
    assert nothing_new == {"items": [], "next_cursor": cursor, "has_more": False}

    # Changed through the ORM and by plain SQL: both move to the end, with their new state.
    async with maker.begin() as session:
        customer = await session.get_one(Customer, ids[1])
        customer.phone = "+47 22 00 00 00"
    async with maker.begin() as session:
        await session.execute(update(Customer).where(Customer.id == ids[0]).values(name="Åsa"))
    await settle(maker)
    changed = await export(export_client, "customers", cursor)
    assert [(c["id"], c["phone"], c["name"]) for c in changed["items"]] == [
        (ids[1], "+47 22 00 00 00", "Bjørn"),
        (ids[0], None, "Åsa"),
    ]
    everything = await export(export_client, "customers")
    assert [item["id"] for item in everything["items"]] == [*ids[2:], ids[1], ids[0]]
    assert everything["next_cursor"] == changed["next_cursor"]


async def test_messages_are_masked_and_deleted_rows_come_as_tombstones(
    maker: Maker, export_client: httpx.AsyncClient
) -> None:
    async with maker.begin() as session:
        kept = await add_ticket(session)
        gone = await add_ticket(session)
        messages = [
            Message(
                ticket_id=ticket_id,
                direction=MessageDirection.inbound,
                is_public=True,
                channel=Channel.email,
                body_text="Mitt kort: 4111 1111 1111 1111",
            )
            for ticket_id in (kept, gone, gone)
        ]
        session.add_all(messages)
        await session.flush()
        await privacy.scan_message(session, messages[0])
    await settle(maker)
    tickets = await export(export_client, "tickets")
    exported = await export(export_client, "messages")
    assert [t["id"] for t in tickets["items"]] == [kept, gone]
    assert [m["ticket_id"] for m in exported["items"]] == [kept, gone, gone]
    # Sensitive values are masked as in every answer with message text.
    assert exported["items"][0]["body_text"] == "Mitt kort: **** **** **** 1111"
    assert exported["items"][0]["deleted"] is False

    async with maker.begin() as session:
        await session.execute(delete(Ticket).where(Ticket.id == gone))
    await settle(maker)
    after = await export(export_client, "tickets", tickets["next_cursor"])
    [tombstone] = after["items"]
    assert tombstone.keys() == {"id", "deleted", "deleted_at"}
    assert (tombstone["id"], tombstone["deleted"]) == (gone, True)
    message_stones = await export(export_client, "messages", exported["next_cursor"])
    gone_messages = [m["id"] for m in exported["items"][1:]]
    assert [(m["id"], m["deleted"]) for m in message_stones["items"]] == [
        (gone_messages[0], True),
        (gone_messages[1], True),
    ]
    # Read from the start, a deleted row appears only as its tombstone.
    whole = await export(export_client, "tickets")
    assert [(t["id"], t["deleted"]) for t in whole["items"]] == [(kept, False), (gone, True)]


async def test_a_change_committed_late_is_served_never_skipped(maker: Maker) -> None:
    await add_customers(maker, "Før")
    await settle(maker)
    async with maker() as session:
        cursor = (
            await service.export(session, READER, ExportEntity.customers, cursor=None, limit=10)
        ).next_cursor

    early = maker()
    async with early.begin():
        # The first transaction writes first, but commits last.
        first = Customer(name="Første")
        early.add(first)
        await early.flush()
        [second] = await add_customers(maker, "Anden")
        # The second committed while the first still runs: serving it now would move the
        # cursor past the first one's row for good.
        async with maker() as session:
            held = await service.export(
                session, READER, ExportEntity.customers, cursor=cursor, limit=10
            )
        assert (held.changes, held.next_cursor) == ([], cursor)
    await early.close()
    await settle(maker)

    async with maker() as session:
        both = await service.export(
            session, READER, ExportEntity.customers, cursor=cursor, limit=10
        )
        assert [c.item.id for c in both.changes] == [first.id, second]
        again = await service.export(
            session, READER, ExportEntity.customers, cursor=both.next_cursor, limit=10
        )
        assert (again.changes, again.next_cursor) == ([], both.next_cursor)


async def test_paging_while_writes_commit_out_of_order_serves_every_change_once(
    maker: Maker,
) -> None:
    """A writer inserts, updates and deletes customers in overlapping transactions that
    commit in the opposite order they began, while a reader pages along; then the reader
    catches up. No change is served twice, and what the reader kept is exactly the table."""
    served: list[tuple[int, int]] = []
    mirror: dict[int, tuple[str | None, int]] = {}
    cursor: str | None = None
    reads = 0
    read_done = asyncio.Condition()

    async def read_once() -> bool:
        nonlocal cursor, reads
        async with maker() as session:
            batch = await service.export(
                session, READER, ExportEntity.customers, cursor=cursor, limit=3
            )
        for change in batch.changes:
            item = change.item
            served.append((item.id, change.position[0]))
            if isinstance(item, ExportedCustomer):
                mirror[item.id] = (item.name, item.version)
            else:
                mirror.pop(item.id, None)
        cursor = batch.next_cursor
        async with read_done:
            reads += 1
            read_done.notify_all()
        return batch.has_more

    async def after_a_read() -> None:
        async with read_done:
            start = reads
            await read_done.wait_for(lambda: reads > start)

    async def change(session: AsyncSession, tag: str, step: int) -> None:
        """Insert a customer; now and then rename or delete one this tag wrote before (the
        two tags never touch the same rows, so the transactions never wait for each other)."""
        session.add(Customer(name=f"{tag} {step}"))
        await session.flush()
        mine = list(
            await session.scalars(
                select(Customer.id).where(Customer.name.startswith(tag)).order_by(Customer.id)
            )
        )
        if step % 3 == 1:
            await session.execute(
                update(Customer)
                .where(Customer.id == mine[0])
                .values(name=f"{tag} renamed {step}", version=Customer.version + 1)
            )
        if step % 4 == 3:
            await session.execute(delete(Customer).where(Customer.id == mine[-2]))

    async def writer() -> None:
        for step in range(12):
            late = maker()
            async with late.begin():
                await change(late, "late", step)
                async with maker.begin() as early:
                    await change(early, "early", step)
                # The early transaction committed, the late one still runs: read now.
                await after_a_read()
            await late.close()
            await after_a_read()

    writing = asyncio.create_task(writer())
    while not writing.done():
        await read_once()
        await asyncio.sleep(0)
    await writing
    await settle(maker)
    while await read_once():
        pass

    assert len(served) == len(set(served))
    async with maker() as session:
        table = {
            row.id: (row.name, row.version)
            for row in await session.execute(select(Customer.id, Customer.name, Customer.version))
        }
    assert len(table) == 24 - 6
    assert mirror == table
