"""Two transactions at once, on real connections (not the rolled-back test session): what they
commit is seen by the other, and is removed again at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.schemas import system_principal
from app.core.errors import Conflict
from app.customers import service
from app.customers.schemas import CustomerCreate

ACTOR = system_principal("ingest")


async def _waits_for_a_lock(engine: AsyncEngine, pid: int) -> bool:
    """Whether the backend ``pid`` is blocked on a lock, polled for up to 10 seconds."""
    async with engine.connect() as watcher:
        for _ in range(200):
            waiting = await watcher.scalar(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
            await watcher.rollback()  # a fresh snapshot of pg_stat_activity each time
            if waiting == "Lock":
                return True
            await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def new_address(engine: AsyncEngine) -> AsyncIterator[str]:
    """An address no customer has; its committed customer and audit events go afterwards."""
    email = f"samtidig-{uuid.uuid4().hex[:12]}@example.test"
    yield email
    async with engine.begin() as connection:
        ids = list(
            await connection.scalars(
                text("SELECT customer_id FROM customer_emails WHERE email = :email"),
                {"email": email},
            )
        )
        if not ids:
            return
        await connection.execute(text("DELETE FROM customers WHERE id = ANY(:ids)"), {"ids": ids})
        # The audit log refuses deletes by trigger; its owner (who migrated) may lift it for
        # this transaction.
        await connection.execute(
            text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        )
        await connection.execute(
            text(
                "DELETE FROM audit_events WHERE entity_type = 'customer' AND entity_id = ANY(:ids)"
            ),
            {"ids": [str(i) for i in ids]},
        )
        await connection.execute(
            text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
        )


async def test_two_resolves_of_one_new_address_give_one_customer(
    engine: AsyncEngine, new_address: str
) -> None:
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker() as first, maker() as second:
        # Its transaction (and so its connection) lasts until the commit below.
        second_pid = await second.scalar(text("SELECT pg_backend_pid()"))
        created = await service.resolve_customer(
            first, ACTOR, customer_id=None, email=new_address, name="Første Åse"
        )
        # `first` has not committed: `second` finds no customer and must wait for `first`,
        # not insert the address a second time.
        racing = asyncio.create_task(
            service.resolve_customer(
                second, ACTOR, customer_id=None, email=new_address, name="Anden Åse"
            )
        )
        try:
            assert await _waits_for_a_lock(engine, second_pid)
            assert not racing.done()
            await first.commit()
            found = await asyncio.wait_for(racing, timeout=10)
            await second.commit()
        finally:
            if not racing.done():
                await first.rollback()
                racing.cancel()

    assert found.id == created.id
    assert found.name == "Første Åse"
    async with AsyncSession(engine) as check:
        count = await check.scalar(
            text("SELECT count(*) FROM customer_emails WHERE email = :email"),
            {"email": new_address},
        )
    assert count == 1


async def test_a_create_racing_for_the_address_is_a_conflict_naming_the_customer(
    engine: AsyncEngine, new_address: str
) -> None:
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker() as first, maker() as second:
        second_pid = await second.scalar(text("SELECT pg_backend_pid()"))
        created = await service.create_customer(
            first, ACTOR, CustomerCreate(name="Første", emails=[new_address])
        )
        racing = asyncio.create_task(
            service.create_customer(
                second, ACTOR, CustomerCreate(name="Anden", emails=[new_address])
            )
        )
        try:
            assert await _waits_for_a_lock(engine, second_pid)
            await first.commit()
            with pytest.raises(Conflict) as raised:
                await asyncio.wait_for(racing, timeout=10)
        finally:
            if not racing.done():
                await first.rollback()
                racing.cancel()
        await second.rollback()

    assert raised.value.extra == {"customer_id": created.id}
    assert raised.value.detail == (
        f"The address {new_address} belongs to customer {created.id} already."
    )
