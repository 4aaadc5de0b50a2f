"""Rate limits: counted per token (or client address) in PostgreSQL, shared by every process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.api.models import RateLimitWindow
from app.api.rate_limits import rate_limit_clock, run_rate_limit_purge_pass
from app.core.config import Settings
from tests.api.conftest import EMAIL, MakeWorld, World
from tests.conftest import TEST_PASSWORD, Caller

LIMIT = 3
AUTH_LIMIT = 2
MOMENT = datetime(2030, 1, 7, 9, 30, 15, tzinfo=UTC)
"""Counters are per minute: requests counted at this moment have 45 seconds left."""


@contextmanager
def counted_at(moment: datetime, *apps: FastAPI) -> Iterator[None]:
    """The apps count requests at ``moment`` instead of the database's clock."""
    for app in apps:
        app.dependency_overrides[rate_limit_clock] = lambda: moment
    try:
        yield
    finally:
        for app in apps:
            app.dependency_overrides.pop(rate_limit_clock, None)


@pytest.fixture
async def world(make_world: MakeWorld) -> AsyncIterator[World]:
    made = await make_world(rate_limit_per_minute=LIMIT, auth_rate_limit_per_minute=AUTH_LIMIT)
    with counted_at(MOMENT, *made.apps):
        yield made


def remaining(response: httpx.Response) -> int:
    return int(response.headers["ratelimit-remaining"])


async def test_every_api_answer_carries_decreasing_limit_headers(
    client: httpx.AsyncClient, app: FastAPI, admin: Caller, settings: Settings
) -> None:
    with counted_at(MOMENT, app):
        first = await client.get("/api/v1/tickets", headers=admin.headers)
        second = await client.get("/api/v1/tickets/999999999", headers=admin.headers)
    assert first.status_code == 200
    assert second.status_code == 404
    for response in (first, second):
        assert response.headers["ratelimit-limit"] == str(settings.rate_limit_per_minute)
        assert response.headers["ratelimit-reset"] == "45"
    assert remaining(second) == remaining(first) - 1
    # Without a moment given, the database's clock counts.
    third = await client.get("/api/v1/tickets", headers=admin.headers)
    assert 0 < int(third.headers["ratelimit-reset"]) <= 60
    assert "ratelimit-limit" not in (await client.get("/healthz")).headers


async def test_over_the_limit_is_429_with_retry_after_across_processes(world: World) -> None:
    answers = []
    async with world.client(0) as one, world.client(1) as two:
        for client in (one, two, one, two):
            answers.append(await client.get("/api/v1/tickets", headers=world.headers))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [remaining(a) for a in answers] == [2, 1, 0, 0]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/rate_limited")
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"] == "45"
    # The next minute counts afresh.
    with counted_at(MOMENT + timedelta(seconds=45), *world.apps):
        async with world.client(0) as one:
            later = await one.get("/api/v1/tickets", headers=world.headers)
    assert later.status_code == 200
    assert remaining(later) == LIMIT - 1
    assert later.headers["ratelimit-reset"] == "60"


async def test_unauthenticated_calls_count_per_address(world: World) -> None:
    def made_up(n: int) -> dict[str, str]:
        return {"Authorization": f"Bearer tkt_made_up_{n}"} if n % 2 else {}

    async with world.client(0, "192.0.2.7") as one, world.client(1, "192.0.2.8") as other:
        statuses = [
            (await one.get("/api/v1/tickets", headers=made_up(n))).status_code
            for n in range(LIMIT + 1)
        ]
        assert statuses == [401] * LIMIT + [429]
        # A token that does not authenticate counts as none: a new one gets no fresh counter.
        assert (await one.get("/api/v1/tickets", headers=made_up(99))).status_code == 429
        assert (await other.get("/api/v1/tickets")).status_code == 401
        # The token has its own counter, untouched by the address's.
        assert (await one.get("/api/v1/tickets", headers=world.headers)).status_code == 200


async def test_logins_have_a_stricter_limit_per_address_even_when_they_fail(
    world: World,
) -> None:
    wrong = {"email": EMAIL, "password": "wrong"}
    async with world.client(0, "192.0.2.9") as one, world.client(1, "192.0.2.9") as two:
        first = await one.post("/api/v1/auth/login", json=wrong)
        second = await two.post("/api/v1/auth/login", json=wrong)
        third = await one.post("/api/v1/auth/login", json={**wrong, "password": TEST_PASSWORD})
    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]
    assert first.headers["ratelimit-limit"] == str(AUTH_LIMIT)
    async with world.client(0, "192.0.2.10") as elsewhere:
        login = await elsewhere.post(
            "/api/v1/auth/login", json={"email": EMAIL, "password": TEST_PASSWORD}
        )
    assert login.status_code == 201


async def test_zero_turns_the_limit_off(world: World) -> None:
    world.apps[0].state.settings = world.apps[0].state.settings.model_copy(
        update={"rate_limit_per_minute": 0}
    )
    async with world.client(0) as client:
        for _ in range(LIMIT + 1):
            response = await client.get("/api/v1/tickets", headers=world.headers)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers


async def test_the_purge_pass_deletes_windows_that_ended(world: World) -> None:
    async with world.client(0, "192.0.2.12") as one:
        await one.get("/api/v1/tickets", headers=world.headers)
        await one.get("/api/v1/tickets")
        with counted_at(MOMENT + timedelta(minutes=1), *world.apps):
            await one.get("/api/v1/tickets", headers=world.headers)
    maker = async_sessionmaker(world.engine)

    async def windows() -> list[datetime]:
        async with maker() as session:
            query = select(RateLimitWindow.window_start).order_by(RateLimitWindow.window_start)
            return list(await session.scalars(query))

    start = MOMENT.replace(second=0)
    assert await windows() == [start, start, start + timedelta(minutes=1)]
    # A window is kept while clocks a minute apart may still count in it.
    assert await run_rate_limit_purge_pass(maker, start + timedelta(minutes=2)) == 0
    assert await run_rate_limit_purge_pass(maker, MOMENT + timedelta(minutes=2), batch=1) == 2
    assert await windows() == [start + timedelta(minutes=1)]
