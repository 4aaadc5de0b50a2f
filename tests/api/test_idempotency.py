"""Idempotency-Key: a retried POST gets the first answer and changes nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.api.deps import get_settings_dep
from app.api.idempotency import answers_with_secrets, response_models, run_idempotency_purge_pass
from app.api.models import IdempotencyRecord
from app.core.clock import utcnow
from app.core.config import Settings
from app.customers.models import Customer
from tests.api.conftest import MakeWorld
from tests.conftest import Caller, MakeAgent

SECRET_FIELDS = {"secret", "token", "challenge", "recovery_codes"}


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
    await session.execute(update(IdempotencyRecord).values(expires_at=func.now()))
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


async def test_answers_with_a_secret_are_stored_encrypted_and_replayed(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    hook = {"url": "https://hooks.example.com/idem", "event_types": ["ticket.created"]}
    created, created_again = [
        await client.post("/api/v1/webhooks", json=hook, headers=keyed(admin, "hook"))
        for _ in range(2)
    ]
    rotate = f"/api/v1/webhooks/{created.json()['id']}/rotate-secret"
    rotated, rotated_again = [
        await client.post(rotate, headers=keyed(admin, "rotate")) for _ in range(2)
    ]
    token, token_again = [
        await client.post(
            "/api/v1/auth/tokens", json={"name": "CRM sync"}, headers=keyed(admin, "token")
        )
        for _ in range(2)
    ]
    plain = await client.post(
        "/api/v1/customers", json={"emails": ["plain@example.test"]}, headers=keyed(admin, "c")
    )
    for first, again in ((created, created_again), (rotated, rotated_again), (token, token_again)):
        assert first.status_code == again.status_code
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
    secrets = [created.json()["secret"], rotated.json()["secret"], token.json()["token"]]
    assert secrets[0] != secrets[1]
    listed = await client.get("/api/v1/auth/tokens", headers=admin.headers)
    assert [t["name"] for t in listed.json()].count("CRM sync") == 1

    rows = await session.execute(select(IdempotencyRecord.key, IdempotencyRecord.body))
    stored = {key: bytes(body) for key, body in rows}
    assert stored.keys() == {"hook", "rotate", "token", "c"}
    for raw in stored.values():
        for secret in secrets:
            assert secret.encode() not in raw
    for key in ("hook", "rotate", "token"):
        assert b"https://hooks.example.com" not in stored[key]
    # Other answers stay readable, for an erasure to find a person's data in them.
    assert stored["c"] == plain.content


async def test_a_secret_answer_kept_under_another_secret_key_is_409(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, admin: Caller
) -> None:
    body = {"name": "ERP"}
    created = await client.post("/api/v1/auth/tokens", json=body, headers=keyed(admin, "erp"))
    assert created.status_code == 201
    other_key = Settings(secret_key=SecretStr("another key " * 4), data_dir=settings.data_dir)
    app.dependency_overrides[get_settings_dep] = lambda: other_key
    try:
        again = await client.post("/api/v1/auth/tokens", json=body, headers=keyed(admin, "erp"))
    finally:
        app.dependency_overrides.pop(get_settings_dep)
    assert again.status_code == 409
    assert "secret key" in again.json()["detail"]
    assert created.json()["token"] not in again.text


def test_every_post_answering_with_a_secret_is_stored_encrypted(app: FastAPI) -> None:
    def fields(model: type[BaseModel]) -> set[str]:
        return set(model.model_fields)

    def shows_secret(route: APIRoute) -> bool:
        return any(
            issubclass(model, BaseModel) and fields(model) & SECRET_FIELDS
            for model in response_models(route.response_model)
        )

    posts = {
        context.path: context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and "POST" in (context.original_route.methods or ())
    }
    secret_routes = {path for path, route in posts.items() if shows_secret(route)}
    assert {path for path, route in posts.items() if answers_with_secrets(route)} == secret_routes
    assert {
        "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}/rotate-secret",
        "/api/v1/auth/tokens",
        "/api/v1/auth/login",
        "/api/v1/auth/login/2fa",
        "/api/v1/auth/2fa/enrol",
        "/api/v1/auth/2fa/confirm",
        "/api/v1/auth/2fa/recovery-codes",
    } <= secret_routes


async def test_the_purge_pass_deletes_expired_answers_of_every_token(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
) -> None:
    other = await make_agent("admin")
    for caller in (admin, other):
        for key in ("a", "b", "c"):
            created = await client.post(
                "/api/v1/customers",
                json={"emails": [f"{key}-{caller.id}@example.test"]},
                headers=keyed(caller, key),
            )
            assert created.status_code == 201
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.key != "c")
        .values(expires_at=func.now() - timedelta(minutes=1))
    )
    maker = async_sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    assert await run_idempotency_purge_pass(maker, utcnow(), batch=3) == 4
    kept = await session.scalars(select(IdempotencyRecord.key))
    assert sorted(kept) == ["c", "c"]
    assert await run_idempotency_purge_pass(maker, utcnow()) == 0
    assert await run_idempotency_purge_pass(maker, utcnow() + timedelta(hours=25)) == 2
