"""What the benchmarks share: a database of their own, created fresh and dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

DEFAULT_SERVER = os.environ.get(
    "TICKETRY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _admin(server_url: str) -> asyncpg.Connection:
    url = make_url(server_url)
    return await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port, database="postgres"
    )


@contextlib.asynccontextmanager
async def bench_database(server_url: str, name: str) -> AsyncIterator[str]:
    """A new, empty database ``name`` on the server (an old one is dropped); its URL."""
    admin = await _admin(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def wait_for_count(
    maker: async_sessionmaker[AsyncSession], statement: Select[tuple[int]], count: int
) -> None:
    """Until the count ``statement`` selects reaches ``count``, looking every 0.1 s."""
    while True:
        async with maker() as session:
            if await session.scalar(statement) == count:
                return
        await asyncio.sleep(0.1)


PEOPLE_SEED_SQL = """
INSERT INTO agents (email, name, role, version)
SELECT 'agent' || g || '@example.dk', 'Agent ' || g, 'agent', 1 FROM generate_series(1, 50) g;
INSERT INTO queues (name, version) SELECT 'Kø ' || g, 1 FROM generate_series(1, 10) g;
INSERT INTO customers (name, version)
SELECT 'Kunde ' || g, 1 FROM generate_series(1, $customers) g;
"""
"""50 agents, 10 queues and ``$customers`` customers, the people a seeded benchmark's tickets
belong to (replace ``$customers`` before running it)."""
