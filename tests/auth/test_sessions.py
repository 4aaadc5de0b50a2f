"""Login sessions: listed, ended everywhere, and every token of an agent revoked by an admin."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from tests.auth.helpers import audit_actions, bearer
from tests.conftest import TEST_PASSWORD, Caller, MakeAgent


async def test_tokens_expire_from_the_moment_given_not_the_wall_clock(
    client: httpx.AsyncClient, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = await make_agent("agent")
    moment = utcnow().replace(microsecond=0) + timedelta(days=3)
    monkeypatch.setattr("app.auth.router.utcnow", lambda: moment)
    login = await client.post(
        "/api/v1/auth/login", json={"email": agent.email, "password": TEST_PASSWORD}
    )
    expires_at = datetime.fromisoformat(login.json()["expires_at"])
    assert expires_at == moment + timedelta(hours=12)
    made = await client.post(
        "/api/v1/auth/tokens",
        headers=agent.headers,
        json={"name": "script", "scopes": ["read"], "expires_in_days": 1},
    )
    assert datetime.fromisoformat(made.json()["expires_at"]) == moment + timedelta(days=1)


async def test_log_out_everywhere(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    agent = await make_agent("agent")
    credentials = {"email": agent.email, "password": TEST_PASSWORD}
    laptop = (await client.post("/api/v1/auth/login", json=credentials)).json()
    phone = (await client.post("/api/v1/auth/login", json=credentials)).json()

    listed = await client.get("/api/v1/auth/sessions", headers=bearer(laptop["token"]))
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [laptop["id"], phone["id"]]
    assert all("token" not in s for s in listed.json())

    ended = await client.delete("/api/v1/auth/sessions", headers=bearer(laptop["token"]))
    assert ended.status_code == 204
    for token in (laptop["token"], phone["token"]):
        assert (await client.get("/api/v1/agents/me", headers=bearer(token))).status_code == 401
    # A token made for a script is no login session and keeps working.
    assert (await client.get("/api/v1/auth/sessions", headers=agent.headers)).json() == []


async def test_an_admin_revokes_every_token_of_an_agent(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    login = await client.post(
        "/api/v1/auth/login", json={"email": agent.email, "password": TEST_PASSWORD}
    )
    revoked = await client.delete(f"/api/v1/auth/agents/{agent.id}/tokens", headers=admin.headers)
    assert revoked.status_code == 204
    for headers in (agent.headers, bearer(login.json()["token"])):
        assert (await client.get("/api/v1/agents/me", headers=headers)).status_code == 401
    assert (await client.get("/api/v1/agents/me", headers=admin.headers)).status_code == 200
    assert "agent.tokens_revoked" in await audit_actions(session, agent.id)
    missing = await client.delete("/api/v1/auth/agents/999999999/tokens", headers=admin.headers)
    assert missing.status_code == 404
