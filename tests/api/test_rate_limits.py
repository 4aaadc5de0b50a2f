"""Rate limits: counted per token (or client address) in PostgreSQL, shared by every process."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.core.config import Settings
from tests.api.conftest import EMAIL, MakeWorld, World
from tests.conftest import TEST_PASSWORD, Caller

LIMIT = 3
AUTH_LIMIT = 2


async def fresh_window() -> None:
    """Counters are per minute: start a burst with time to spare before the minute ends."""
    left = 60 - time.time() % 60
    if left < 10:
        await asyncio.sleep(left + 0.5)


@pytest.fixture
async def world(make_world: MakeWorld) -> World:
    return await make_world(rate_limit_per_minute=LIMIT, auth_rate_limit_per_minute=AUTH_LIMIT)


def remaining(response: httpx.Response) -> int:
    return int(response.headers["ratelimit-remaining"])


async def test_every_api_answer_carries_decreasing_limit_headers(
    client: httpx.AsyncClient, admin: Caller, settings: Settings
) -> None:
    await fresh_window()
    first = await client.get("/api/v1/tickets", headers=admin.headers)
    second = await client.get("/api/v1/tickets/999999999", headers=admin.headers)
    assert first.status_code == 200
    assert second.status_code == 404
    for response in (first, second):
        assert response.headers["ratelimit-limit"] == str(settings.rate_limit_per_minute)
        assert 0 < int(response.headers["ratelimit-reset"]) <= 60
    assert remaining(second) == remaining(first) - 1
    assert "ratelimit-limit" not in (await client.get("/healthz")).headers


async def test_over_the_limit_is_429_with_retry_after_across_processes(world: World) -> None:
    await fresh_window()
    answers = []
    async with world.client(0) as one, world.client(1) as two:
        for client in (one, two, one, two):
            answers.append(await client.get("/api/v1/tickets", headers=world.headers))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [remaining(a) for a in answers] == [2, 1, 0, 0]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/rate_limited")
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]


async def test_unauthenticated_calls_count_per_address(world: World) -> None:
    await fresh_window()
    async with world.client(0, "192.0.2.7") as one, world.client(1, "192.0.2.8") as other:
        statuses = [(await one.get("/api/v1/tickets")).status_code for _ in range(LIMIT + 1)]
        assert statuses == [401] * LIMIT + [429]
        assert (await other.get("/api/v1/tickets")).status_code == 401
        # The token has its own counter, untouched by the address's.
        assert (await one.get("/api/v1/tickets", headers=world.headers)).status_code == 200


async def test_logins_have_a_stricter_limit_per_address_even_when_they_fail(
    world: World,
) -> None:
    await fresh_window()
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
