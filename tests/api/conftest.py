"""A committed world for behaviour that spans API processes: two apps, one database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.agents.models import Agent, AgentRole
from app.auth.models import ApiToken
from app.core.config import Settings
from app.core.security import hash_api_token, hash_password, new_api_token, token_display_prefix
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.main import create_app
from tests.conftest import TEST_PASSWORD

EMAIL = "integration@example.test"


@dataclass
class World:
    """Two API processes (each with its own engine) on one committed database, and an admin's
    token."""

    apps: tuple[FastAPI, FastAPI]
    engine: AsyncEngine
    token: str

    def client(self, index: int, address: str = "192.0.2.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(
            app=self.apps[index], raise_app_exceptions=False, client=(address, 4000)
        )
        return httpx.AsyncClient(transport=transport, base_url="http://ticketry.test")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(empty_database_url: str, settings: Settings) -> AsyncIterator[MakeWorld]:
    """``await make_world(**settings_changes)``; the database is dropped afterwards."""
    engines: list[AsyncEngine] = []

    async def make(**changes: Any) -> World:
        configured = settings.model_copy(update=changes)
        engines.extend(create_engine(empty_database_url, pool_size=2) for _ in range(2))
        await upgrade_to_head(engines[0])
        token = new_api_token()
        async with create_sessionmaker(engines[0]).begin() as session:
            agent = Agent(
                role=AgentRole.admin,
                email=EMAIL,
                name="Integration",
                password_hash=hash_password(TEST_PASSWORD),
            )
            session.add(agent)
            await session.flush()
            session.add(
                ApiToken(
                    agent_id=agent.id,
                    name="test",
                    prefix=token_display_prefix(token),
                    token_hash=hash_api_token(token),
                    scopes=["read", "write"],
                )
            )
        apps = (create_app(configured), create_app(configured))
        for app, engine in zip(apps, engines, strict=True):
            app.state.sessionmaker = create_sessionmaker(engine)
        return World(apps, engines[0], token)

    yield make
    for engine in engines:
        await engine.dispose()
