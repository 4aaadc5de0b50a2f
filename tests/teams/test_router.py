from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.teams.models import team_members
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events

TEAMS = "/api/v1/teams"


async def _create(client: httpx.AsyncClient, admin: Caller, **body: Any) -> dict[str, Any]:
    response = await client.post(TEAMS, headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_admin_creates_and_reads_a_team(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    created = await client.post(
        TEAMS,
        headers=admin.headers,
        json={"name": "  Økonomi – Åsa & Bjørn  ", "description": "Fakturaer og kreditnotaer"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    team = created.json()
    assert created.headers["location"] == f"{TEAMS}/{team['id']}"
    assert team["name"] == "Økonomi – Åsa & Bjørn"
    assert team["description"] == "Fakturaer og kreditnotaer"

    agent = await make_agent(AgentRole.agent)
    fetched = await client.get(created.headers["location"], headers=agent.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == team

    events = await audit_events(client, admin, entity_type="team", entity_id=str(team["id"]))
    assert [e["action"] for e in events] == ["team.created"]
    assert events[0]["after"]["name"] == "Økonomi – Åsa & Bjørn"
    assert events[0]["actor_label"] == admin.email


async def test_duplicate_name_is_409(client: httpx.AsyncClient, admin: Caller) -> None:
    first = await _create(client, admin, name="Drift")
    again = await client.post(TEAMS, headers=admin.headers, json={"name": "Drift"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["team_id"] == first["id"]

    other = await _create(client, admin, name="Salg")
    rename = await client.patch(
        f"{TEAMS}/{other['id']}", headers=admin.headers, json={"name": "Drift"}
    )
    assert rename.status_code == 409
    # Keeping one's own name is no clash.
    same = await client.patch(
        f"{TEAMS}/{other['id']}", headers=admin.headers, json={"name": "Salg", "description": "x"}
    )
    assert same.status_code == 200, same.text


async def test_invalid_bodies_point_at_the_field(client: httpx.AsyncClient, admin: Caller) -> None:
    empty = await client.post(TEAMS, headers=admin.headers, json={"name": "   "})
    assert empty.status_code == 422
    assert [e["pointer"] for e in empty.json()["errors"]] == ["/body/name"]

    team = await _create(client, admin, name="Support")
    null_name = await client.patch(
        f"{TEAMS}/{team['id']}", headers=admin.headers, json={"name": None}
    )
    assert null_name.status_code == 422
    assert [e["pointer"] for e in null_name.json()["errors"]] == ["/body/name"]


async def test_patch_with_if_match_and_stale_412(client: httpx.AsyncClient, admin: Caller) -> None:
    team = await _create(client, admin, name="Førstelinje", description="Telefon")
    url = f"{TEAMS}/{team['id']}"
    updated = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"description": None}
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    assert updated.json()["description"] is None
    assert updated.json()["name"] == "Førstelinje"

    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"name": "Andenlinje"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "Førstelinje"

    events = await audit_events(client, admin, entity_type="team", action="team.updated")
    assert len(events) == 1
    assert events[0]["before"]["description"] == "Telefon"
    assert events[0]["after"]["description"] is None


async def test_delete_team(client: httpx.AsyncClient, admin: Caller, session: AsyncSession) -> None:
    team = await _create(client, admin, name="Midlertidig")
    queue = await client.post(
        "/api/v1/queues", headers=admin.headers, json={"name": "Holdets kø", "team_id": team["id"]}
    )
    assert queue.status_code == 201, queue.text
    ticket_id = await add_ticket(session, team_id=team["id"])
    ticket_url = f"/api/v1/tickets/{ticket_id}"
    ticket_etag = (await client.get(ticket_url, headers=admin.headers)).headers["etag"]
    url = f"{TEAMS}/{team['id']}"
    stale = await client.delete(url, headers={**admin.headers, "If-Match": '"7"'})
    assert stale.status_code == 412

    deleted = await client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    assert (await client.delete(url, headers=admin.headers)).status_code == 404

    events = await audit_events(client, admin, entity_type="team", entity_id=str(team["id"]))
    assert events[0]["action"] == "team.deleted"
    assert events[0]["before"]["name"] == "Midlertidig"
    assert events[0]["before"]["queue_ids"] == [queue.json()["id"]]
    assert events[0]["before"]["ticket_ids"] == [ticket_id]

    # Losing the team changed the queue and the ticket: their ETags moved.
    queue_after = await client.get(f"/api/v1/queues/{queue.json()['id']}", headers=admin.headers)
    assert queue_after.json()["team_id"] is None
    assert queue_after.headers["etag"] != queue.headers["etag"]
    ticket_after = await client.get(ticket_url, headers=admin.headers)
    assert ticket_after.json()["team_id"] is None
    assert ticket_after.headers["etag"] != ticket_etag


async def test_unknown_fields_are_refused(client: httpx.AsyncClient, admin: Caller) -> None:
    typo = await client.post(TEAMS, headers=admin.headers, json={"nmae": "Drift"})
    assert typo.status_code == 422
    assert {e["pointer"] for e in typo.json()["errors"]} == {"/body/name", "/body/nmae"}
    team = await _create(client, admin, name="Stavefejl")
    patch = await client.patch(
        f"{TEAMS}/{team['id']}", headers=admin.headers, json={"descripton": "x"}
    )
    assert patch.status_code == 422
    assert {e["pointer"] for e in patch.json()["errors"]} == {"/body/descripton"}


async def test_list_is_paged_by_name(client: httpx.AsyncClient, admin: Caller) -> None:
    for name in ("Charlie", "Alfa", "Bravo"):
        await _create(client, admin, name=name)
    first = await client.get(TEAMS, headers=admin.headers, params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [t["name"] for t in page["items"]] == ["Alfa", "Bravo"]
    assert page["next_cursor"]
    second = await client.get(
        TEAMS, headers=admin.headers, params={"limit": 2, "cursor": page["next_cursor"]}
    )
    assert [t["name"] for t in second.json()["items"]] == ["Charlie"]
    assert second.json()["next_cursor"] is None


async def test_roles(client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent) -> None:
    team = await _create(client, admin, name="Rollespil")
    url = f"{TEAMS}/{team['id']}"
    external = await make_agent(AgentRole.external)
    for response in (
        await client.get(TEAMS, headers=external.headers),
        await client.get(url, headers=external.headers),
        await client.get(f"{url}/members", headers=external.headers),
    ):
        assert response.status_code == 403, response.text

    supervisor = await make_agent(AgentRole.supervisor)
    assert (await client.get(TEAMS, headers=supervisor.headers)).status_code == 200
    for response in (
        await client.post(TEAMS, headers=supervisor.headers, json={"name": "Nyt"}),
        await client.patch(url, headers=supervisor.headers, json={"name": "Nyt"}),
        await client.delete(url, headers=supervisor.headers),
        await client.put(f"{url}/members/{supervisor.id}", headers=supervisor.headers),
        await client.delete(f"{url}/members/{admin.id}", headers=supervisor.headers),
    ):
        assert response.status_code == 403, response.text
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "Rollespil"


async def test_members(client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent) -> None:
    team = await _create(client, admin, name="Kundeservice")
    members_url = f"{TEAMS}/{team['id']}/members"
    søren = await make_agent(AgentRole.agent, name="Søren Ørsted")
    åse = await make_agent(AgentRole.supervisor, name="Åse Ødegård")

    added = await client.put(f"{members_url}/{søren.id}", headers=admin.headers)
    assert added.status_code == 200, added.text
    assert [m["id"] for m in added.json()] == [søren.id]
    assert added.json()[0] == {
        "id": søren.id,
        "name": "Søren Ørsted",
        "email": søren.email,
        "role": "agent",
        "active": True,
        "available": True,
    }
    await client.put(f"{members_url}/{åse.id}", headers=admin.headers)
    again = await client.put(f"{members_url}/{åse.id}", headers=admin.headers)
    assert again.status_code == 200

    listed = await client.get(members_url, headers=søren.headers)
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()] == ["Søren Ørsted", "Åse Ødegård"]

    removed = await client.delete(f"{members_url}/{søren.id}", headers=admin.headers)
    assert removed.status_code == 204
    assert [m["id"] for m in (await client.get(members_url, headers=admin.headers)).json()] == [
        åse.id
    ]
    not_member = await client.delete(f"{members_url}/{søren.id}", headers=admin.headers)
    assert not_member.status_code == 404

    events = await audit_events(client, admin, entity_type="team", entity_id=str(team["id"]))
    # Newest first; adding Åse twice is recorded once.
    assert [(e["action"], e["after"] or e["before"]) for e in events] == [
        ("team.member_removed", {"agent_id": søren.id}),
        ("team.member_added", {"agent_id": åse.id}),
        ("team.member_added", {"agent_id": søren.id}),
        ("team.created", events[-1]["after"]),
    ]


async def test_members_of_missing_team_or_agent_are_404(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    team = await _create(client, admin, name="Findes")
    assert (await client.get(f"{TEAMS}/0/members", headers=admin.headers)).status_code == 404
    assert (
        await client.put(f"{TEAMS}/0/members/{admin.id}", headers=admin.headers)
    ).status_code == 404
    missing_agent = await client.put(f"{TEAMS}/{team['id']}/members/0", headers=admin.headers)
    assert missing_agent.status_code == 404
    assert "Agent 0" in missing_agent.json()["detail"]


async def test_deleting_a_team_ends_its_memberships(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, make_agent: MakeAgent
) -> None:
    agent = await make_agent(AgentRole.agent)
    old = await _create(client, admin, name="Gammel")
    kept = await _create(client, admin, name="Bliver")
    for team in (old, kept):
        await client.put(f"{TEAMS}/{team['id']}/members/{agent.id}", headers=admin.headers)
    assert (await client.delete(f"{TEAMS}/{old['id']}", headers=admin.headers)).status_code == 204

    memberships = await session.scalars(
        select(team_members.c.team_id).where(team_members.c.agent_id == agent.id)
    )
    assert list(memberships) == [kept["id"]]
    # The agent itself stays.
    assert (
        await client.get(f"/api/v1/agents/{agent.id}", headers=admin.headers)
    ).status_code == 200
