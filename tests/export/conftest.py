"""A committed database of the export tests' own: the export serves only rows of ended
transactions, which the rolled-back test transaction of the other tests never is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent, AgentRole
from app.api.deps import get_session, get_sessionmaker
from app.auth.models import ApiToken
from app.core.security import hash_api_token, new_api_token, token_display_prefix
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def maker(empty_database_url: str) -> AsyncIterator[Maker]:
    engine = create_engine(empty_database_url, pool_size=5)
    await upgrade_to_head(engine)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def settle(maker: Maker) -> None:
    """Wait until every transaction that began before now has ended on the whole server (a
    test run beside this one may hold the export back for a moment: that is the export
    working)."""
    async with maker.begin() as session:
        now = await session.scalar(text("SELECT pg_current_xact_id()::text::bigint"))
    async with maker() as session:
        for _ in range(600):
            oldest_running = await session.scalar(
                text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            )
            await session.rollback()
            if oldest_running > now:
                return
            await asyncio.sleep(0.05)
    pytest.fail("transactions of other sessions kept running for 30 seconds")


@pytest.fixture
async def export_client(app: FastAPI, maker: Maker) -> AsyncIterator[httpx.AsyncClient]:
    """Calls the app on the committed database, as an admin."""

    async def committed_session() -> AsyncIterator[AsyncSession]:
        async with maker() as session:
            yield session
            await session.commit()

    token = new_api_token()
    async with maker.begin() as session:
        agent = Agent(role=AgentRole.admin, email="admin@example.test", name="Admin")
        session.add(agent)
        await session.flush()
        session.add(
            ApiToken(
                agent_id=agent.id,
                name="export",
                prefix=token_display_prefix(token),
                token_hash=hash_api_token(token),
                scopes=["read"],
            )
        )
    app.dependency_overrides[get_session] = committed_session
    app.dependency_overrides[get_sessionmaker] = lambda: maker
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://ticketry.test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client
    finally:
        app.dependency_overrides.pop(get_session, None)
        app.dependency_overrides.pop(get_sessionmaker, None)
