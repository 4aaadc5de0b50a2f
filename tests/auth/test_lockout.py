"""Failed logins lock an address for a while, known or not; rate limits on the login calls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.api.deps import get_sessionmaker
from app.auth import service
from app.auth.models import LoginLock
from app.auth.schemas import TokenCreated
from app.core.clock import utcnow
from tests.api.test_rate_limits import MOMENT, counted_at
from tests.auth.helpers import audit_actions, changed_settings, code, enrol
from tests.conftest import TEST_PASSWORD, Caller, MakeAgent

LOGIN = "/api/v1/auth/login"


async def test_five_failures_lock_the_account_and_an_admin_unlocks_it(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    wrong = {"email": agent.email, "password": "not the password at all"}
    for _ in range(5):
        assert (await client.post(LOGIN, json=wrong)).status_code == 401
    locked = await client.post(LOGIN, json={**wrong, "password": TEST_PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["type"].endswith("/account_locked")
    locked_until = datetime.fromisoformat(locked.json()["locked_until"])
    assert timedelta(minutes=14) < locked_until - utcnow() <= timedelta(minutes=15)
    assert 14 * 60 < locked.json()["retry_after"] <= 15 * 60
    assert locked.headers["Retry-After"] == str(locked.json()["retry_after"])
    assert "agent.locked" in await audit_actions(session, agent.id)

    # An unknown address locks the same way: a lock tells nothing about the account.
    nobody = {"email": "nobody@example.test", "password": "not the password at all"}
    answers = [await client.post(LOGIN, json=nobody) for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    assert "Retry-After" not in answers[0].headers
    assert 14 * 60 < int(answers[5].headers["Retry-After"]) <= 15 * 60

    not_admin = await client.post(f"/api/v1/auth/agents/{agent.id}/unlock", headers=agent.headers)
    assert not_admin.status_code == 403
    unlocked = await client.post(f"/api/v1/auth/agents/{agent.id}/unlock", headers=admin.headers)
    assert unlocked.status_code == 204
    login = await client.post(LOGIN, json={**wrong, "password": TEST_PASSWORD})
    assert login.status_code == 201, login.text
    assert "agent.unlocked" in await audit_actions(session, agent.id)


async def test_parallel_guesses_are_counted_one_by_one_and_refused_once_locked(
    app: FastAPI, engine: AsyncEngine
) -> None:
    """Each attempt on its own connection, committed, as on replicas: a burst must not pass the
    lock check before any of its failures is counted."""
    # An unknown address: the failures count the same, and leave no agent or audit rows behind.
    email = f"burst-{uuid.uuid4().hex[:8]}@example.test"
    app.dependency_overrides[get_sessionmaker] = lambda: async_sessionmaker(
        engine, expire_on_commit=False
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        with changed_settings(app, auth_rate_limit_per_minute=0):
            async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
                guess = {"email": email, "password": "not the password at all"}
                answers = await asyncio.gather(*(client.post(LOGIN, json=guess) for _ in range(10)))
    finally:
        app.dependency_overrides.pop(get_sessionmaker, None)
        async with engine.begin() as connection:
            await connection.execute(delete(LoginLock).where(LoginLock.email == email))
    assert sorted(a.status_code for a in answers) == [401] * 5 + [429] * 5


async def test_a_lock_ends_after_its_minutes_and_a_success_resets_the_count(
    session: AsyncSession, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    policy = service.LoginPolicy(
        lifetime=timedelta(hours=1),
        max_failures=2,
        lock=timedelta(minutes=15),
        require_2fa_roles=frozenset(),
    )

    async def login(password: str, now: datetime) -> TokenCreated:
        result = await service.login(
            session,
            agent.email,
            password,
            policy=policy,
            source_ip=None,
            request_id=None,
            now=now,
        )
        assert isinstance(result, TokenCreated)
        return result

    start = utcnow()
    with pytest.raises(service.LoginRefused):
        await login("wrong password here", start)
    await login(TEST_PASSWORD, start)  # the count starts again after a success
    for _ in range(2):
        with pytest.raises(service.LoginRefused):
            await login("wrong password here", start)
    with pytest.raises(service.AccountLocked):
        await login(TEST_PASSWORD, start + timedelta(minutes=14, seconds=59))
    assert await login(TEST_PASSWORD, start + timedelta(minutes=15))


async def test_wrong_two_factor_codes_count_as_failed_logins(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    secret, _ = await enrol(client, agent.headers)
    credentials = {"email": agent.email, "password": TEST_PASSWORD}
    challenge = (await client.post(LOGIN, json=credentials)).json()["challenge"]
    good = code(secret, 1)
    bad = next(c for c in ("000000", "111111", "222222") if c not in (good, code(secret)))
    for _ in range(5):
        wrong = await client.post(
            "/api/v1/auth/login/2fa", json={"challenge": challenge, "code": bad}
        )
        assert wrong.status_code == 401
    locked = await client.post(
        "/api/v1/auth/login/2fa", json={"challenge": challenge, "code": good}
    )
    assert locked.status_code == 429
    assert (await client.post(LOGIN, json=credentials)).status_code == 429


async def test_the_login_calls_are_rate_limited_per_address(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    second_step = {"challenge": "tkt_unknown", "code": "123456"}
    with changed_settings(app, auth_rate_limit_per_minute=2), counted_at(MOMENT, app):
        answers = [await client.post("/api/v1/auth/login/2fa", json=second_step) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[-1].json()["type"].endswith("/rate_limited")
    assert answers[-1].headers["retry-after"] == "45"


def test_the_contract_names_retry_after_on_a_429(app: FastAPI) -> None:
    login = app.openapi()["paths"][LOGIN]["post"]["responses"]
    assert login["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert "headers" not in login["401"]
