from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from tests.conftest import _drop_database, _recreate_database


@pytest.fixture(scope="package")
async def committed_database(
    database_url: str,
) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    """A migrated database of its own whose transactions really commit (races between
    connections, the command line); its URL and sessions."""
    name = f"ticketry_gdpr_{os.getpid()}"
    url = await _recreate_database(database_url, name)
    engine = create_engine(url, pool_size=3)
    await upgrade_to_head(engine)
    yield url, create_sessionmaker(engine)
    await engine.dispose()
    await _drop_database(database_url, name)
