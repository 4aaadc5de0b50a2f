from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import ApiToken
from app.core.clock import utcnow
from tests.conftest import TEST_PASSWORD, Caller, MakeAgent


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_gives_a_token_wrong_password_does_not(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("supervisor", email="birgitta@example.se")
    ok = await client.post(
        "/api/v1/auth/login", json={"email": "Birgitta@Example.se", "password": TEST_PASSWORD}
    )
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["token"].startswith("tkt_")
    assert body["token"].startswith(body["prefix"])
    assert body["agent_id"] == agent.id
    assert sorted(body["scopes"]) == ["read", "write"]
    assert body["expires_at"] is not None

    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "birgitta@example.se", "password": "not the password"}
    )
    assert wrong.status_code == 401
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.se", "password": TEST_PASSWORD}
    )
    assert unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_tokens_are_shown_once_listed_and_revocable(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    created = await client.post(
        "/api/v1/auth/tokens",
        headers=agent.headers,
        json={"name": "Skript", "scopes": ["read"], "expires_in_days": 7},
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert (await client.get("/api/v1/agents/me", headers=bearer(token))).status_code == 200

    listed = await client.get("/api/v1/auth/tokens", headers=agent.headers)
    assert listed.status_code == 200
    assert all("token" not in t for t in listed.json())
    assert {t["name"] for t in listed.json()} == {"test", "Skript"}

    revoked = await client.delete(
        f"/api/v1/auth/tokens/{created.json()['id']}", headers=agent.headers
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await client.get("/api/v1/agents/me", headers=bearer(token))).status_code == 401


async def test_token_rules(client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller) -> None:
    agent = await make_agent("agent")
    reader = await make_agent("agent", scopes=["read"])
    other = await make_agent("agent")

    for_other = await client.post(
        "/api/v1/auth/tokens", headers=agent.headers, json={"name": "x", "agent_id": other.id}
    )
    assert for_other.status_code == 403
    by_admin = await client.post(
        "/api/v1/auth/tokens", headers=admin.headers, json={"name": "CRM", "agent_id": other.id}
    )
    assert by_admin.status_code == 201
    assert by_admin.json()["agent_id"] == other.id
    widen = await client.post("/api/v1/auth/tokens", headers=reader.headers, json={"name": "x"})
    assert widen.status_code == 403  # a read-only token may not create anything

    everyone = await client.get(
        "/api/v1/auth/tokens", headers=agent.headers, params={"all_agents": True}
    )
    assert everyone.status_code == 403
    everyone = await client.get(
        "/api/v1/auth/tokens", headers=admin.headers, params={"all_agents": True}
    )
    assert {t["agent_id"] for t in everyone.json()} >= {agent.id, other.id, admin.id}

    not_mine = await client.delete(
        f"/api/v1/auth/tokens/{by_admin.json()['id']}", headers=agent.headers
    )
    assert not_mine.status_code == 404


async def test_expired_token_and_deactivated_agent_are_refused(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    expired = await make_agent("agent")
    await session.execute(
        update(ApiToken)
        .where(ApiToken.agent_id == expired.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    assert (await client.get("/api/v1/agents/me", headers=expired.headers)).status_code == 401

    gone = await make_agent("agent")
    await session.execute(update(Agent).where(Agent.id == gone.id).values(active=False))
    response = await client.get("/api/v1/agents/me", headers=gone.headers)
    assert response.status_code == 401
    assert "deactivated" in response.json()["detail"]
    login = await client.post(
        "/api/v1/auth/login", json={"email": gone.email, "password": TEST_PASSWORD}
    )
    assert login.status_code == 401
