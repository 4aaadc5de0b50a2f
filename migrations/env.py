"""Alembic environment: async engine, or a connection handed in by ``app.db.migrate``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.db.models import Base

target_metadata = Base.metadata

MIGRATION_LOCK_KEY = 7_415_221_001
"""Advisory lock taken while migrating, so replicas starting together migrate one at a time."""


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from app.core.config import get_settings
    from app.db.embedded import resolve_database_url
    from app.db.session import create_engine

    engine = create_engine(resolve_database_url(get_settings()), pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
