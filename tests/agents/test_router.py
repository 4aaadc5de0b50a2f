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


async def test_the_last_admin_cannot_be_demoted_or_deactivated(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    url = f"/api/v1/agents/{admin.id}"
    for change in ({"role": "agent"}, {"active": False}):
        refused = await client.patch(url, headers=admin.headers, json=change)
        assert refused.status_code == 409, refused.text
        assert "last active admin" in refused.json()["detail"]
    await make_agent("admin")
    allowed = await client.patch(url, headers=admin.headers, json={"role": "supervisor"})
    assert allowed.status_code == 200


async def test_updates_refuse_nulls_unknown_fields_and_weak_etags(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    other = await make_agent("agent")
    url = f"/api/v1/agents/{other.id}"
    null = await client.patch(url, headers=admin.headers, json={"available": None})
    assert null.status_code == 422
    assert null.json()["errors"][0]["pointer"] == "/body/available"
    typo = await client.patch(url, headers=admin.headers, json={"capacty": 3})
    assert typo.status_code == 422
    assert typo.json()["errors"][0]["pointer"] == "/body/capacty"
    escalate = await client.patch(
        "/api/v1/agents/me", headers=other.headers, json={"role": "admin"}
    )
    assert escalate.status_code == 422
    weak = await client.patch(
        url, headers={**admin.headers, "If-Match": 'W/"1"'}, json={"capacity": 3}
    )
    assert weak.status_code == 412


async def test_changing_the_password_ends_other_login_sessions(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    credentials = {"email": agent.email, "password": TEST_PASSWORD}
    laptop = (await client.post("/api/v1/auth/login", json=credentials)).json()["token"]
    phone = (await client.post("/api/v1/auth/login", json=credentials)).json()["token"]
    changed = await client.patch(
        "/api/v1/agents/me",
        headers={"Authorization": f"Bearer {laptop}"},
        json={"password": "a brand new passphrase", "current_password": TEST_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    me = "/api/v1/agents/me"
    assert (await client.get(me, headers={"Authorization": f"Bearer {laptop}"})).status_code == 200
    assert (await client.get(me, headers={"Authorization": f"Bearer {phone}"})).status_code == 401
    # A token made for a script is not a login session and keeps working.
    assert (await client.get(me, headers=agent.headers)).status_code == 200


async def test_a_change_of_nothing_writes_no_audit_event(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    other = await make_agent("agent")
    same = await client.patch(
        f"/api/v1/agents/{other.id}", headers=admin.headers, json={"capacity": 10}
    )
    assert same.status_code == 200
    events = await client.get(
        "/api/v1/audit-events",
        headers=admin.headers,
        params={"entity_type": "agent", "entity_id": str(other.id)},
    )
    assert events.json()["items"] == []
