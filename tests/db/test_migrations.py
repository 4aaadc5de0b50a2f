"""Migrations build exactly the schema the models describe, and can be undone and redone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from app.db.models import Base
from app.db.session import create_engine


@pytest.fixture
async def empty_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _differences(engine: AsyncEngine) -> list[Any]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def _downgrade_to_base(engine: AsyncEngine) -> None:
    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)


async def _leftovers(engine: AsyncEngine) -> dict[str, list[str]]:
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        types = await connection.scalars(
            text(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')"
            )
        )
        functions = await connection.scalars(
            text(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            )
        )
        return {
            "tables": sorted(set(tables) - {"alembic_version"}),
            "types": sorted(types),
            "functions": sorted(functions),
        }


async def test_upgrading_an_empty_database_gives_the_models_schema(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade_to_head(empty_engine)
    assert await current_revision(empty_engine) == head_revision()
    assert await _differences(empty_engine) == [], (
        "models and migrations disagree: add a migration with "
        '`alembic revision --autogenerate -m "..."` and review it'
    )


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade_to_head(empty_engine)

    await _downgrade_to_base(empty_engine)
    assert await current_revision(empty_engine) is None
    assert await _leftovers(empty_engine) == {"tables": [], "types": [], "functions": []}

    await upgrade_to_head(empty_engine)
    assert await current_revision(empty_engine) == head_revision()
    assert await _differences(empty_engine) == []
