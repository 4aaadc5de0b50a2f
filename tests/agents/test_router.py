from __future__ import annotations

import httpx

from tests.conftest import TEST_PASSWORD, Caller, MakeAgent


async def test_admin_creates_agent_and_agent_logs_in(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    created = await client.post(
        "/api/v1/agents",
        headers=admin.headers,
        json={
            "email": "Åsa@Example.test",
            "name": "Åsa Sørensen",
            "role": "agent",
            "password": TEST_PASSWORD,
            "skills": {"billing": 4},
            "languages": ["da", "sv"],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "åsa@example.test"
    assert body["name"] == "Åsa Sørensen"
    assert created.headers["etag"] == '"1"'

    login = await client.post(
        "/api/v1/auth/login", json={"email": "åsa@example.test", "password": TEST_PASSWORD}
    )
    assert login.status_code == 201, login.text
    token = login.json()["token"]
    me = await client.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]


async def test_stale_if_match_is_412(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    other = await make_agent("agent")
    url = f"/api/v1/agents/{other.id}"
    first = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"capacity": 5}
    )
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'
    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"capacity": 7}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    audit = await client.get(
        "/api/v1/audit-events",
        headers=admin.headers,
        params={"entity_type": "agent", "entity_id": str(other.id)},
    )
    assert audit.status_code == 200
    events = audit.json()["items"]
    assert events[0]["action"] == "agent.updated"
    assert events[0]["before"]["capacity"] == 10
    assert events[0]["after"]["capacity"] == 5
    assert events[0]["actor_label"] == admin.email
