from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.queues.models import Queue
from app.sla import service
from app.tickets.models import Ticket
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events

POLICIES = "/api/v1/sla-policies"


async def _create(client: httpx.AsyncClient, admin: Caller, **body: Any) -> dict[str, Any]:
    response = await client.post(POLICIES, headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_admin_creates_and_reads_a_policy(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    created = await client.post(
        POLICIES,
        headers=admin.headers,
        json={"name": "  Guld – Åsa & Bjørn  ", "description": "Store kunder"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    policy = created.json()
    assert created.headers["location"] == f"{POLICIES}/{policy['id']}"
    assert policy["name"] == "Guld – Åsa & Bjørn"
    assert policy["description"] == "Store kunder"
    assert policy["version"] == 1

    agent = await make_agent(AgentRole.agent)
    fetched = await client.get(created.headers["location"], headers=agent.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == policy
    assert (await client.get(f"{POLICIES}/0", headers=agent.headers)).status_code == 404

    events = await audit_events(
        client, admin, entity_type="sla_policy", entity_id=str(policy["id"])
    )
    assert [e["action"] for e in events] == ["sla_policy.created"]
    assert events[0]["after"]["name"] == "Guld – Åsa & Bjørn"
    assert events[0]["actor_label"] == admin.email


async def test_duplicate_name_is_409(client: httpx.AsyncClient, admin: Caller) -> None:
    first = await _create(client, admin, name="Guld")
    again = await client.post(POLICIES, headers=admin.headers, json={"name": "Guld"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["sla_policy_id"] == first["id"]

    other = await _create(client, admin, name="Sølv")
    rename = await client.patch(
        f"{POLICIES}/{other['id']}", headers=admin.headers, json={"name": "Guld"}
    )
    assert rename.status_code == 409
    assert rename.json()["sla_policy_id"] == first["id"]
    # Keeping one's own name is no clash.
    same = await client.patch(
        f"{POLICIES}/{other['id']}",
        headers=admin.headers,
        json={"name": "Sølv", "description": "x"},
    )
    assert same.status_code == 200, same.text


async def test_invalid_bodies_point_at_the_field(client: httpx.AsyncClient, admin: Caller) -> None:
    empty = await client.post(POLICIES, headers=admin.headers, json={"name": "   "})
    assert empty.status_code == 422
    assert [e["pointer"] for e in empty.json()["errors"]] == ["/body/name"]

    policy = await _create(client, admin, name="Bronze")
    url = f"{POLICIES}/{policy['id']}"
    null_name = await client.patch(url, headers=admin.headers, json={"name": None})
    assert null_name.status_code == 422
    assert [e["pointer"] for e in null_name.json()["errors"]] == ["/body/name"]
    typo = await client.patch(url, headers=admin.headers, json={"descripton": "x"})
    assert typo.status_code == 422
    assert {e["pointer"] for e in typo.json()["errors"]} == {"/body/descripton"}


async def test_patch_with_if_match_and_stale_412(client: httpx.AsyncClient, admin: Caller) -> None:
    policy = await _create(client, admin, name="Standard", description="Hverdage")
    url = f"{POLICIES}/{policy['id']}"
    updated = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"description": None}
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    assert updated.json()["description"] is None
    assert updated.json()["name"] == "Standard"

    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"name": "Udvidet"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "Standard"

    events = await audit_events(
        client, admin, entity_type="sla_policy", action="sla_policy.updated"
    )
    assert len(events) == 1
    assert events[0]["before"]["description"] == "Hverdage"
    assert events[0]["after"]["description"] is None


async def test_delete_policy_in_use_leaves_the_ticket_without_one(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    policy = await _create(client, admin, name="Midlertidig")
    kept = await _create(client, admin, name="Bliver")
    ticket_id = await add_ticket(session, sla_policy_id=policy["id"])
    other_ticket_id = await add_ticket(session, sla_policy_id=kept["id"])
    url = f"{POLICIES}/{policy['id']}"

    stale = await client.delete(url, headers={**admin.headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    deleted = await client.delete(url, headers={**admin.headers, "If-Match": '"1"'})
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    assert (await client.delete(url, headers=admin.headers)).status_code == 404

    rows = await session.execute(
        select(Ticket.id, Ticket.sla_policy_id).where(Ticket.id.in_([ticket_id, other_ticket_id]))
    )
    assert {row.id: row.sla_policy_id for row in rows} == {
        ticket_id: None,
        other_ticket_id: kept["id"],
    }
    assert (
        await client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)
    ).status_code == 200

    events = await audit_events(
        client, admin, entity_type="sla_policy", entity_id=str(policy["id"])
    )
    assert [e["action"] for e in events] == ["sla_policy.deleted", "sla_policy.created"]
    assert events[0]["before"]["name"] == "Midlertidig"
    assert events[0]["before"]["ticket_ids"] == [ticket_id]
    assert events[0]["after"] is None


async def test_list_is_paged_by_name(client: httpx.AsyncClient, admin: Caller) -> None:
    for name in ("Charlie", "Alfa", "Bravo"):
        await _create(client, admin, name=name)
    first = await client.get(POLICIES, headers=admin.headers, params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [p["name"] for p in page["items"]] == ["Alfa", "Bravo"]
    assert page["next_cursor"]
    second = await client.get(
        POLICIES, headers=admin.headers, params={"limit": 2, "cursor": page["next_cursor"]}
    )
    assert [p["name"] for p in second.json()["items"]] == ["Charlie"]
    assert second.json()["next_cursor"] is None


async def test_roles(client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent) -> None:
    policy = await _create(client, admin, name="Rollespil")
    url = f"{POLICIES}/{policy['id']}"
    external = await make_agent(AgentRole.external)
    for response in (
        await client.get(POLICIES, headers=external.headers),
        await client.get(url, headers=external.headers),
    ):
        assert response.status_code == 403, response.text

    agent = await make_agent(AgentRole.agent)
    assert (await client.get(POLICIES, headers=agent.headers)).status_code == 200
    assert (await client.get(url, headers=agent.headers)).status_code == 200

    supervisor = await make_agent(AgentRole.supervisor)
    for response in (
        await client.post(POLICIES, headers=supervisor.headers, json={"name": "Nyt"}),
        await client.patch(url, headers=supervisor.headers, json={"name": "Nyt"}),
        await client.delete(url, headers=supervisor.headers),
    ):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "Rollespil"
    events = await audit_events(client, admin, entity_type="sla_policy")
    assert [e["action"] for e in events] == ["sla_policy.created"]


async def test_find_policy_for_other_domains(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    policy = await _create(client, admin, name="Til regler")
    found = await service.find_policy(session, policy["id"])
    assert found is not None
    assert found.name == "Til regler"
    assert await service.find_policy(session, 0) is None


async def test_targets_and_escalation_steps_are_checked(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    body: dict[str, Any] = {
        "name": "Guld",
        "targets": {"urgent": {"first_response": 30, "resolution": 240}},
        "at_risk_percent": 75,
        "escalations": [
            {"at_percent": 80, "actions": [{"type": "notify", "event": "sla.risiko"}]},
            {
                "at_percent": 100,
                "metrics": ["resolution"],
                "actions": [
                    {"type": "raise_priority"},
                    {"type": "set_queue", "queue_id": 987654321},
                ],
            },
        ],
    }
    unknown_queue = await client.post(POLICIES, headers=admin.headers, json=body)
    assert unknown_queue.status_code == 422
    assert [e["pointer"] for e in unknown_queue.json()["errors"]] == [
        "/body/escalations/1/actions/1/queue_id"
    ]
    queue = Queue(name="Supervisorer")
    session.add(queue)
    await session.flush()
    body["escalations"][1]["actions"][1]["queue_id"] = queue.id
    policy = await _create(client, admin, **body)
    assert policy["targets"] == {
        "urgent": {
            "first_response": 30,
            "next_response": None,
            "periodic_update": None,
            "resolution": 240,
        }
    }
    assert policy["escalations"][1]["actions"][0] == {"type": "raise_priority"}
    assert policy["calendar_id"] is None

    url = f"{POLICIES}/{policy['id']}"
    for change, pointer in [
        ({"targets": {"someday": {"resolution": 5}}}, "/body/targets/someday/[key]"),
        ({"targets": {"low": {"resolution": 0}}}, "/body/targets/low/resolution"),
        ({"targets": {"low": {"reply": 5}}}, "/body/targets/low/reply"),
        ({"at_risk_percent": 100}, "/body/at_risk_percent"),
        ({"calendar_id": 987654321}, "/body/calendar_id"),
        (
            {"escalations": [{"at_percent": 80, "actions": [{"type": "close"}]}]},
            "/body/escalations/0/actions/0",
        ),
    ]:
        refused = await client.patch(url, headers=admin.headers, json=change)
        assert refused.status_code == 422, change
        assert pointer in [e["pointer"] for e in refused.json()["errors"]], refused.json()
    backwards = await client.patch(
        url,
        headers=admin.headers,
        json={
            "escalations": [
                {"at_percent": 100, "actions": [{"type": "raise_priority"}]},
                {"at_percent": 50, "actions": [{"type": "raise_priority"}]},
            ]
        },
    )
    assert backwards.status_code == 422
    assert (await client.get(url, headers=admin.headers)).json()["version"] == 1


async def test_a_queue_names_its_default_policy(client: httpx.AsyncClient, admin: Caller) -> None:
    policy = await _create(client, admin, name="Kø-standard")
    created = await client.post(
        "/api/v1/queues",
        headers=admin.headers,
        json={"name": "Faktura", "sla_policy_id": policy["id"]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["sla_policy_id"] == policy["id"]
    missing = await client.patch(
        f"/api/v1/queues/{created.json()['id']}",
        headers=admin.headers,
        json={"sla_policy_id": 0},
    )
    assert missing.status_code == 422
    assert [e["pointer"] for e in missing.json()["errors"]] == ["/body/sla_policy_id"]


async def test_a_calendar_a_policy_counts_in_is_not_deleted(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    calendar = await client.post(
        "/api/v1/calendars",
        headers=admin.headers,
        json={
            "name": "Kundeservice Malmö",
            "timezone": "Europe/Stockholm",
            "hours": {"mon": [{"start": "08:00", "end": "16:00"}]},
        },
    )
    assert calendar.status_code == 201, calendar.text
    url = calendar.headers["location"]
    policy = await _create(client, admin, name="Silver", calendar_id=calendar.json()["id"])

    refused = await client.delete(url, headers=admin.headers)
    assert refused.status_code == 409
    assert refused.json()["policies"] == ["Silver"]
    assert (await client.get(url, headers=admin.headers)).status_code == 200

    await client.patch(
        f"{POLICIES}/{policy['id']}",
        headers={**admin.headers, "If-Match": '"1"'},
        json={"calendar_id": None},
    )
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
