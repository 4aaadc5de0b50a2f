"""Two-factor login with TOTP: enrol, confirm, the second login step, recovery codes, disable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import two_factor
from app.core import crypto
from app.core.config import Settings
from tests.auth.helpers import audit_actions, bearer, changed_settings, code, enrol
from tests.conftest import TEST_PASSWORD, Caller, MakeAgent

LOGIN = "/api/v1/auth/login"


def test_a_code_is_taken_one_step_either_side_and_only_after_the_last_one() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = datetime(2026, 11, 23, 9, 0, 10, tzinfo=UTC)
    step = totp.timecode(now)
    for offset in (-1, 0, 1):
        at = now + timedelta(seconds=30 * offset)
        assert two_factor.accepted_step(secret, totp.at(at), now, None) == step + offset
    for offset in (-2, 2):
        at = now + timedelta(seconds=30 * offset)
        assert two_factor.accepted_step(secret, totp.at(at), now, None) is None
    # Once a code of a step is taken, neither it nor an older one is taken again.
    assert two_factor.accepted_step(secret, totp.at(now), now, step) is None
    earlier = now - timedelta(seconds=30)
    assert two_factor.accepted_step(secret, totp.at(earlier), now, step) is None
    later = now + timedelta(seconds=30)
    assert two_factor.accepted_step(secret, totp.at(later), now, step) == step + 1


async def test_the_whole_two_factor_flow(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession, settings: Settings
) -> None:
    agent = await make_agent("agent")
    credentials = {"email": agent.email, "password": TEST_PASSWORD}

    started = await client.post("/api/v1/auth/2fa/enrol", headers=agent.headers)
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    assert started.json()["otpauth_uri"].startswith("otpauth://totp/Ticketry:")
    assert secret in started.json()["otpauth_uri"]
    stored = await session.scalar(
        text("SELECT secret_encrypted FROM two_factor_credentials WHERE agent_id = :id"),
        {"id": agent.id},
    )
    assert stored is not None
    assert secret not in stored
    key = settings.resolved_secret_key()
    assert crypto.decrypt(key, stored, label=crypto.TOTP_LABEL) == secret
    status = await client.get("/api/v1/auth/2fa", headers=agent.headers)
    assert status.json() == {
        "enabled": False,
        "pending": True,
        "required": False,
        "recovery_codes_left": 0,
    }
    # Pending is not on: the password alone still logs in.
    assert (await client.post(LOGIN, json=credentials)).status_code == 201

    wrong = await client.post(
        "/api/v1/auth/2fa/confirm", headers=agent.headers, json={"code": code(secret, 5)}
    )
    assert wrong.status_code == 422
    # Kept, not computed again: replayed in a later time step it would be a fresh code.
    confirming = code(secret)
    confirmed = await client.post(
        "/api/v1/auth/2fa/confirm", headers=agent.headers, json={"code": confirming}
    )
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recovery_codes"]
    assert len(set(recovery_codes)) == 10
    hashes = await session.scalar(
        text("SELECT recovery_code_hashes FROM two_factor_credentials WHERE agent_id = :id"),
        {"id": agent.id},
    )
    assert hashes is not None
    assert not set(recovery_codes) & set(hashes)

    challenge = await client.post(LOGIN, json=credentials)
    assert challenge.status_code == 202, challenge.text
    assert "token" not in challenge.json()
    second_step = {"challenge": challenge.json()["challenge"]}
    # The challenge is no token to call the API with.
    refused = await client.get("/api/v1/tickets", headers=bearer(second_step["challenge"]))
    assert refused.status_code == 403
    # The code that confirmed the enrolment was used up, inside its own time step too.
    replayed = await client.post("/api/v1/auth/login/2fa", json={**second_step, "code": confirming})
    assert replayed.status_code == 401
    logged_in = await client.post(
        "/api/v1/auth/login/2fa", json={**second_step, "code": code(secret, 1)}
    )
    assert logged_in.status_code == 201, logged_in.text
    token = logged_in.json()["token"]
    assert (await client.get("/api/v1/agents/me", headers=bearer(token))).status_code == 200
    # A challenge gives one token only.
    again = await client.post(
        "/api/v1/auth/login/2fa", json={**second_step, "code": code(secret, 1)}
    )
    assert again.status_code == 401

    second_step = {"challenge": (await client.post(LOGIN, json=credentials)).json()["challenge"]}
    by_recovery = await client.post(
        "/api/v1/auth/login/2fa",
        json={**second_step, "recovery_code": recovery_codes[0].upper()},
    )
    assert by_recovery.status_code == 201, by_recovery.text
    second_step = {"challenge": (await client.post(LOGIN, json=credentials)).json()["challenge"]}
    reused = await client.post(
        "/api/v1/auth/login/2fa", json={**second_step, "recovery_code": recovery_codes[0]}
    )
    assert reused.status_code == 401

    not_off = await client.request(
        "DELETE", "/api/v1/auth/2fa", headers=agent.headers, json={"recovery_code": "nope-nope"}
    )
    assert not_off.status_code == 403
    off = await client.request(
        "DELETE",
        "/api/v1/auth/2fa",
        headers=agent.headers,
        json={"recovery_code": recovery_codes[1]},
    )
    assert off.status_code == 204, off.text
    assert (await client.post(LOGIN, json=credentials)).status_code == 201

    assert await audit_actions(session, agent.id) == [
        "agent.two_factor_enrolment_started",
        "agent.two_factor_enabled",
        "agent.recovery_code_used",
        "agent.two_factor_disabled",
    ]


async def test_new_recovery_codes_replace_the_old_and_need_a_code(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    secret, old_codes = await enrol(client, agent.headers)
    path = "/api/v1/auth/2fa/recovery-codes"
    refused = await client.post(path, headers=agent.headers, json={"code": code(secret)})
    assert refused.status_code == 403  # the confirming code, used already
    renewed = await client.post(path, headers=agent.headers, json={"code": code(secret, 1)})
    assert renewed.status_code == 200, renewed.text
    assert not set(renewed.json()["recovery_codes"]) & set(old_codes)

    challenge = (
        await client.post(LOGIN, json={"email": agent.email, "password": TEST_PASSWORD})
    ).json()["challenge"]
    old = await client.post(
        "/api/v1/auth/login/2fa", json={"challenge": challenge, "recovery_code": old_codes[0]}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/v1/auth/login/2fa",
        json={"challenge": challenge, "recovery_code": renewed.json()["recovery_codes"][0]},
    )
    assert new.status_code == 201


async def test_an_admin_resets_an_agents_two_factor_login(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    await enrol(client, agent.headers)
    assert (await client.post("/api/v1/auth/2fa/enrol", headers=agent.headers)).status_code == 409
    reset = await client.delete(f"/api/v1/auth/agents/{agent.id}/2fa", headers=admin.headers)
    assert reset.status_code == 204
    login = await client.post(LOGIN, json={"email": agent.email, "password": TEST_PASSWORD})
    assert login.status_code == 201
    assert "agent.two_factor_reset" in await audit_actions(session, agent.id)


async def test_a_role_that_must_use_two_factors_gets_a_token_only_to_enrol(
    client: httpx.AsyncClient, make_agent: MakeAgent, app: FastAPI
) -> None:
    supervisor = await make_agent("supervisor")
    agent = await make_agent("agent")
    with changed_settings(app, require_2fa_roles=["supervisor"]):
        login = await client.post(
            LOGIN, json={"email": supervisor.email, "password": TEST_PASSWORD}
        )
        assert login.status_code == 201, login.text
        assert login.json()["scopes"] == ["2fa_enrolment"]
        limited = bearer(login.json()["token"])
        assert (await client.get("/api/v1/tickets", headers=limited)).status_code == 403
        assert (await client.get("/api/v1/auth/tokens", headers=limited)).status_code == 403
        status = await client.get("/api/v1/auth/2fa", headers=limited)
        assert status.json()["required"] is True
        secret, _ = await enrol(client, limited)
        login = await client.post(
            LOGIN, json={"email": supervisor.email, "password": TEST_PASSWORD}
        )
        assert login.status_code == 202
        done = await client.post(
            "/api/v1/auth/login/2fa",
            json={"challenge": login.json()["challenge"], "code": code(secret, 1)},
        )
        assert sorted(done.json()["scopes"]) == ["read", "write"]

        other = await client.post(LOGIN, json={"email": agent.email, "password": TEST_PASSWORD})
        assert sorted(other.json()["scopes"]) == ["read", "write"]
