"""An agent's own password change needs proof; admins reset passwords and require two-factor
login of one agent."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import audit_actions, bearer, code, enrol
from tests.conftest import TEST_PASSWORD, Caller, MakeAgent

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/agents/me"
NEW_PASSWORD = "a brand new passphrase"


async def test_an_own_password_change_needs_the_current_password_and_code(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    unproven = await client.patch(ME, headers=agent.headers, json={"password": NEW_PASSWORD})
    assert unproven.status_code == 422
    assert unproven.json()["errors"][0]["pointer"] == "/body/current_password"
    wrong = await client.patch(
        ME,
        headers=agent.headers,
        json={"password": NEW_PASSWORD, "current_password": "not the password at all"},
    )
    assert wrong.status_code == 403

    secret, _ = await enrol(client, agent.headers)
    proven = {"password": NEW_PASSWORD, "current_password": TEST_PASSWORD}
    no_code = await client.patch(ME, headers=agent.headers, json=proven)
    assert no_code.status_code == 422
    assert no_code.json()["errors"][0]["pointer"] == "/body/code"
    bad = next(c for c in ("000000", "111111", "222222") if c not in (code(secret, 1),))
    wrong_code = await client.patch(ME, headers=agent.headers, json={**proven, "code": bad})
    assert wrong_code.status_code == 403
    assert "agent.password_changed" not in await audit_actions(session, agent.id)

    changed = await client.patch(
        ME, headers=agent.headers, json={**proven, "code": code(secret, 1)}
    )
    assert changed.status_code == 200, changed.text
    assert "agent.password_changed" in await audit_actions(session, agent.id)
    login = await client.post(LOGIN, json={"email": agent.email, "password": NEW_PASSWORD})
    assert login.status_code == 202


async def test_an_admin_resets_another_agents_password_but_not_their_own_without_proof(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    session_token = (
        await client.post(LOGIN, json={"email": agent.email, "password": TEST_PASSWORD})
    ).json()["token"]
    reset = await client.patch(
        f"/api/v1/agents/{agent.id}", headers=admin.headers, json={"password": NEW_PASSWORD}
    )
    assert reset.status_code == 200, reset.text
    assert "agent.password_changed" in await audit_actions(session, agent.id)
    assert (await client.get(ME, headers=bearer(session_token))).status_code == 401
    login = await client.post(LOGIN, json={"email": agent.email, "password": NEW_PASSWORD})
    assert login.status_code == 201

    own = await client.patch(
        f"/api/v1/agents/{admin.id}", headers=admin.headers, json={"password": NEW_PASSWORD}
    )
    assert own.status_code == 403


async def test_an_admin_requires_two_factor_login_of_one_agent(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    enrolled = await make_agent("agent")
    await enrol(client, enrolled.headers)
    credentials = {"email": agent.email, "password": TEST_PASSWORD}
    login_session = bearer((await client.post(LOGIN, json=credentials)).json()["token"])
    assert (await client.get(ME, headers=login_session)).json()["require_2fa"] is False

    not_admin = await client.patch(
        f"/api/v1/agents/{agent.id}", headers=agent.headers, json={"require_2fa": True}
    )
    assert not_admin.status_code == 403
    for caller in (agent, enrolled):
        required = await client.patch(
            f"/api/v1/agents/{caller.id}", headers=admin.headers, json={"require_2fa": True}
        )
        assert required.status_code == 200, required.text
        assert required.json()["require_2fa"] is True
    assert "agent.two_factor_required" in await audit_actions(session, agent.id)

    # Not enrolled: the login session ends, the personal API token stays.
    assert (await client.get(ME, headers=login_session)).status_code == 401
    assert (await client.get(ME, headers=agent.headers)).status_code == 200
    login = await client.post(LOGIN, json=credentials)
    assert login.json()["scopes"] == ["2fa_enrolment"]
    limited = bearer(login.json()["token"])
    assert (await client.get("/api/v1/auth/2fa", headers=limited)).json()["required"] is True
    assert (await client.get("/api/v1/tickets", headers=limited)).status_code == 403

    # Enrolled already: nothing changes for them but the flag.
    status = (await client.get("/api/v1/auth/2fa", headers=enrolled.headers)).json()
    assert (status["enabled"], status["required"]) == (True, True)
