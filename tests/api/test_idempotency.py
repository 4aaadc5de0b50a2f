"""Idempotency-Key: a retried POST gets the first answer and changes nothing twice."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.models import IdempotencyRecord
from app.customers.models import Customer
from tests.api.conftest import MakeWorld
from tests.conftest import Caller, MakeAgent


async def customers(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Customer)) or 0


def keyed(caller: Caller, key: str) -> dict[str, str]:
    return {**caller.headers, "Idempotency-Key": key}


async def test_a_retry_replays_the_first_answer_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    before = await customers(session)
    body = {"emails": ["once@example.test"], "name": "Once"}
    first = await client.post("/api/v1/customers", json=body, headers=keyed(admin, "k-1"))
    again = await client.post("/api/v1/customers", json=body, headers=keyed(admin, "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await customers(session) == before + 1


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    first = await client.post(
        "/api/v1/customers", json={"emails": ["a@example.test"]}, headers=keyed(admin, "k-2")
    )
    other = await client.post(
        "/api/v1/customers", json={"emails": ["b@example.test"]}, headers=keyed(admin, "k-2")
    )
    assert first.status_code == 201
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert "different request body" in other.json()["detail"]


async def test_keys_belong_to_their_caller_and_failures_are_not_kept(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, make_agent: MakeAgent
) -> None:
    other = await make_agent("admin")
    before = await customers(session)
    for caller, address in ((admin, "mine@example.test"), (other, "theirs@example.test")):
        created = await client.post(
            "/api/v1/customers", json={"emails": [address]}, headers=keyed(caller, "shared")
        )
        assert created.status_code == 201
        assert "idempotent-replayed" not in created.headers
    assert await customers(session) == before + 2
    # A conflict is not stored: the retry runs again (and fails again).
    body = {"emails": ["mine@example.test"]}
    for _ in range(2):
        clash = await client.post("/api/v1/customers", json=body, headers=keyed(admin, "dup"))
        assert clash.status_code == 409
        assert "idempotent-replayed" not in clash.headers


async def test_bad_keys_are_refused_and_expired_keys_are_forgotten(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    too_long = await client.post(
        "/api/v1/customers", json={"emails": ["x@example.test"]}, headers=keyed(admin, "k" * 201)
    )
    assert too_long.status_code == 422
    body = {"emails": ["late@example.test"]}
    first = await client.post("/api/v1/customers", json=body, headers=keyed(admin, "old"))
    assert first.status_code == 201
    await session.execute(
        update(IdempotencyRecord).values(created_at=func.now() - func.make_interval(0, 0, 0, 2))
    )
    await session.commit()
    # The key is expired: the request runs again (the address is taken by now).
    again = await client.post("/api/v1/customers", json=body, headers=keyed(admin, "old"))
    assert again.status_code == 409


async def test_concurrent_duplicates_in_two_processes_create_one_customer(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    headers = {**world.headers, "Idempotency-Key": uuid.uuid4().hex}
    body = {"emails": ["race@example.test"]}
    async with world.client(0) as one, world.client(1) as two:
        answers = await asyncio.gather(
            *(c.post("/api/v1/customers", json=body, headers=headers) for c in (one, two, one))
        )
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 2
    async with world.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(Customer)) == 1
