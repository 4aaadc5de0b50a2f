from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.tickets.models import Ticket
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events
from tests.mailboxes.conftest import add_template

QUEUES = "/api/v1/queues"


async def _create(client: httpx.AsyncClient, admin: Caller, **body: Any) -> dict[str, Any]:
    response = await client.post(QUEUES, headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _pointers(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["pointer"] for e in response.json()["errors"]]


async def test_admin_creates_and_reads_a_queue(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    team = await client.post("/api/v1/teams", headers=admin.headers, json={"name": "Økonomi"})
    created = await client.post(
        QUEUES,
        headers=admin.headers,
        json={
            "name": "Fakturaspørgsmål Århus",
            "description": "Alt om fakturaer",
            "inbound_addresses": ["Faktura@Økonomi.DK", "faktura@økonomi.dk", "b@example.test"],
            "default_priority": "high",
            "required_skills": {"fakturering": 3, "svensk": 1},
            "team_id": team.json()["id"],
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    queue = created.json()
    assert created.headers["location"] == f"{QUEUES}/{queue['id']}"
    assert queue["name"] == "Fakturaspørgsmål Århus"
    # Normalised (lower-case), and the repeated spelling is kept once.
    assert queue["inbound_addresses"] == ["faktura@økonomi.dk", "b@example.test"]
    assert queue["default_priority"] == "high"
    assert queue["required_skills"] == {"fakturering": 3, "svensk": 1}
    assert queue["team_id"] == team.json()["id"]

    agent = await make_agent(AgentRole.agent)
    fetched = await client.get(created.headers["location"], headers=agent.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == queue

    events = await audit_events(client, admin, entity_type="queue", entity_id=str(queue["id"]))
    assert [e["action"] for e in events] == ["queue.created"]
    assert events[0]["after"]["inbound_addresses"] == queue["inbound_addresses"]


async def test_unknown_fields_are_refused(client: httpx.AsyncClient, admin: Caller) -> None:
    typo = await client.post(QUEUES, headers=admin.headers, json={"name": "Ny", "tema_id": 1})
    assert _pointers(typo) == ["/body/tema_id"]
    queue = await _create(client, admin, name="Stavefejl")
    patch = await client.patch(
        f"{QUEUES}/{queue['id']}", headers=admin.headers, json={"descripton": "x"}
    )
    assert _pointers(patch) == ["/body/descripton"]


async def test_defaults(client: httpx.AsyncClient, admin: Caller) -> None:
    queue = await _create(client, admin, name="Minimal")
    assert queue["description"] is None
    assert queue["inbound_addresses"] == []
    assert queue["default_priority"] == "normal"
    assert queue["required_skills"] == {}
    assert queue["team_id"] is None
    assert queue["mailbox_id"] is None
    # Acknowledged as the mailbox a ticket came through says, with its template.
    assert queue["acknowledge"] is None
    assert queue["acknowledgement_template_id"] is None


async def test_name_clash_is_409(client: httpx.AsyncClient, admin: Caller) -> None:
    first = await _create(client, admin, name="Støtte")
    again = await client.post(QUEUES, headers=admin.headers, json={"name": "Støtte"})
    assert again.status_code == 409
    assert again.json()["queue_id"] == first["id"]

    other = await _create(client, admin, name="Salg")
    rename = await client.patch(
        f"{QUEUES}/{other['id']}", headers=admin.headers, json={"name": "Støtte"}
    )
    assert rename.status_code == 409


async def test_address_of_another_queue_is_409_naming_it(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    owner = await _create(
        client, admin, name="Kundeservice Malmö", inbound_addresses=["hjälp@example.se"]
    )
    clash = await client.post(
        QUEUES,
        headers=admin.headers,
        json={"name": "Ny", "inbound_addresses": ["ny@example.se", "HJÄLP@example.se"]},
    )
    assert clash.status_code == 409
    problem = clash.json()
    assert "Kundeservice Malmö" in problem["detail"]
    assert "hjälp@example.se" in problem["detail"]
    assert problem["queue_id"] == owner["id"]
    assert problem["addresses"] == ["hjälp@example.se"]

    other = await _create(client, admin, name="Ny", inbound_addresses=["ny@example.se"])
    steal = await client.patch(
        f"{QUEUES}/{other['id']}",
        headers=admin.headers,
        json={"inbound_addresses": ["ny@example.se", "hjälp@example.se"]},
    )
    assert steal.status_code == 409
    # A queue keeping its own addresses does not clash with itself.
    keep = await client.patch(
        f"{QUEUES}/{owner['id']}",
        headers=admin.headers,
        json={"inbound_addresses": ["hjälp@example.se", "mer@example.se"]},
    )
    assert keep.status_code == 200, keep.text
    # Once released, the address can move.
    await client.patch(
        f"{QUEUES}/{owner['id']}", headers=admin.headers, json={"inbound_addresses": []}
    )
    moved = await client.patch(
        f"{QUEUES}/{other['id']}",
        headers=admin.headers,
        json={"inbound_addresses": ["hjälp@example.se"]},
    )
    assert moved.status_code == 200, moved.text


async def test_invalid_bodies_point_at_the_field(client: httpx.AsyncClient, admin: Caller) -> None:
    assert _pointers(await client.post(QUEUES, headers=admin.headers, json={})) == ["/body/name"]
    bad_address = await client.post(
        QUEUES,
        headers=admin.headers,
        json={"name": "X", "inbound_addresses": ["ok@example.test", "not an address"]},
    )
    assert _pointers(bad_address) == ["/body/inbound_addresses/1"]
    bad_skill = await client.post(
        QUEUES, headers=admin.headers, json={"name": "X", "required_skills": {"dansk": 6}}
    )
    assert _pointers(bad_skill) == ["/body/required_skills/dansk"]
    bad_priority = await client.post(
        QUEUES, headers=admin.headers, json={"name": "X", "default_priority": "asap"}
    )
    assert _pointers(bad_priority) == ["/body/default_priority"]

    missing_team = await client.post(
        QUEUES, headers=admin.headers, json={"name": "X", "team_id": 0}
    )
    assert _pointers(missing_team) == ["/body/team_id"]
    assert "Team 0" in missing_team.json()["detail"]
    assert (await client.get(QUEUES, headers=admin.headers)).json()["items"] == []


async def test_patch(client: httpx.AsyncClient, admin: Caller) -> None:
    team = await client.post("/api/v1/teams", headers=admin.headers, json={"name": "Hold Ø"})
    queue = await _create(
        client, admin, name="Reklamationer", description="Gammel", team_id=team.json()["id"]
    )
    url = f"{QUEUES}/{queue['id']}"

    for null_field in ("name", "inbound_addresses", "default_priority", "required_skills"):
        response = await client.patch(url, headers=admin.headers, json={null_field: None})
        assert _pointers(response) == [f"/body/{null_field}"]
    assert _pointers(await client.patch(url, headers=admin.headers, json={"team_id": 0})) == [
        "/body/team_id"
    ]

    updated = await client.patch(
        url,
        headers={**admin.headers, "If-Match": '"1"'},
        json={"description": None, "team_id": None, "default_priority": "urgent"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    body = updated.json()
    assert (body["description"], body["team_id"], body["default_priority"]) == (
        None,
        None,
        "urgent",
    )
    assert body["name"] == "Reklamationer"

    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"name": "Andet"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "Reklamationer"

    events = await audit_events(client, admin, entity_type="queue", action="queue.updated")
    assert len(events) == 1
    assert events[0]["before"]["default_priority"] == "normal"
    assert events[0]["after"]["default_priority"] == "urgent"
    assert events[0]["after"]["team_id"] is None
    assert "name" not in events[0]["after"]


async def test_delete_keeps_tickets_without_a_queue(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    queue = await _create(client, admin, name="Lukkes")
    ticket_id = await add_ticket(session, queue_id=queue["id"])

    ticket_url = f"/api/v1/tickets/{ticket_id}"
    etag_before = (await client.get(ticket_url, headers=admin.headers)).headers["etag"]

    url = f"{QUEUES}/{queue['id']}"
    assert (
        await client.delete(url, headers={**admin.headers, "If-Match": '"9"'})
    ).status_code == 412
    deleted = await client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    assert (await client.delete(url, headers=admin.headers)).status_code == 404

    remaining = (await session.execute(select(Ticket.id, Ticket.queue_id))).all()
    assert [tuple(row) for row in remaining] == [(ticket_id, None)]
    # Taking the ticket out of the queue changed it: its ETag moved.
    after = await client.get(ticket_url, headers=admin.headers)
    assert after.json()["queue_id"] is None
    assert after.headers["etag"] != etag_before

    events = await audit_events(client, admin, entity_type="queue", entity_id=str(queue["id"]))
    assert events[0]["action"] == "queue.deleted"
    assert events[0]["before"]["name"] == "Lukkes"
    assert events[0]["before"]["ticket_ids"] == [ticket_id]


async def test_deleting_the_team_detaches_its_queues(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    team = (await client.post("/api/v1/teams", headers=admin.headers, json={"name": "Væk"})).json()
    queue = await _create(client, admin, name="Bliver", team_id=team["id"])
    other = await _create(client, admin, name="Uden hold")
    assert (
        await client.delete(f"/api/v1/teams/{team['id']}", headers=admin.headers)
    ).status_code == 204
    after = await client.get(f"{QUEUES}/{queue['id']}", headers=admin.headers)
    assert after.json()["team_id"] is None
    # Detaching is a change of the queue: its ETag moved; a queue without the team kept its.
    assert after.headers["etag"] == f'"{queue["version"] + 1}"'
    untouched = await client.get(f"{QUEUES}/{other['id']}", headers=admin.headers)
    assert untouched.headers["etag"] == f'"{other["version"]}"'


async def test_list_is_paged_by_name(client: httpx.AsyncClient, admin: Caller) -> None:
    for name in ("Charlie", "Alfa", "Bravo"):
        await _create(client, admin, name=name)
    first = await client.get(QUEUES, headers=admin.headers, params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [q["name"] for q in page["items"]] == ["Alfa", "Bravo"]
    second = await client.get(
        QUEUES, headers=admin.headers, params={"limit": 2, "cursor": page["next_cursor"]}
    )
    assert [q["name"] for q in second.json()["items"]] == ["Charlie"]
    assert second.json()["next_cursor"] is None
    bad_cursor = await client.get(QUEUES, headers=admin.headers, params={"cursor": "nonsense"})
    assert _pointers(bad_cursor) == ["/cursor"]


async def test_only_admins_write(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    queue = await _create(client, admin, name="Beskyttet")
    url = f"{QUEUES}/{queue['id']}"
    for role in (AgentRole.supervisor, AgentRole.agent, AgentRole.external):
        caller = await make_agent(role)
        for response in (
            await client.post(QUEUES, headers=caller.headers, json={"name": "Nyt"}),
            await client.patch(url, headers=caller.headers, json={"name": "Nyt"}),
            await client.delete(url, headers=caller.headers),
        ):
            assert response.status_code == 403, (role, response.text)
    assert (await client.get(url, headers=admin.headers)).json()["version"] == 1


async def test_grants_decide_what_an_external_agent_sees(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    granted = await _create(client, admin, name="Partner Göteborg")
    hidden = await _create(client, admin, name="Intern")
    partner = await make_agent(AgentRole.external, name="Jörgen Partner")

    # Before any grant the partner sees nothing, and a hidden queue looks missing.
    assert (await client.get(QUEUES, headers=partner.headers)).json()["items"] == []
    assert (
        await client.get(f"{QUEUES}/{granted['id']}", headers=partner.headers)
    ).status_code == 404

    grants_url = f"{QUEUES}/{granted['id']}/grants"
    added = await client.put(f"{grants_url}/{partner.id}", headers=admin.headers)
    assert added.status_code == 200, added.text
    assert added.json() == [partner.id]
    again = await client.put(f"{grants_url}/{partner.id}", headers=admin.headers)
    assert again.json() == [partner.id]
    assert (await client.get(grants_url, headers=admin.headers)).json() == [partner.id]

    listed = await client.get(QUEUES, headers=partner.headers)
    assert [q["id"] for q in listed.json()["items"]] == [granted["id"]]
    assert (
        await client.get(f"{QUEUES}/{granted['id']}", headers=partner.headers)
    ).status_code == 200
    missing = await client.get(f"{QUEUES}/{hidden['id']}", headers=partner.headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"Queue {hidden['id']} does not exist."
    # Internal agents see every queue without grants.
    agent = await make_agent(AgentRole.agent)
    assert len((await client.get(QUEUES, headers=agent.headers)).json()["items"]) == 2

    removed = await client.delete(f"{grants_url}/{partner.id}", headers=admin.headers)
    assert removed.status_code == 204
    assert (await client.get(grants_url, headers=admin.headers)).json() == []
    assert (await client.get(QUEUES, headers=partner.headers)).json()["items"] == []
    assert (
        await client.delete(f"{grants_url}/{partner.id}", headers=admin.headers)
    ).status_code == 404

    events = await audit_events(client, admin, entity_type="queue", entity_id=str(granted["id"]))
    # Newest first; granting twice is recorded once.
    assert [(e["action"], e["after"] or e["before"]) for e in events[:2]] == [
        ("queue.grant_removed", {"agent_id": partner.id}),
        ("queue.grant_added", {"agent_id": partner.id, "customer_fields": "none"}),
    ]
    assert [e["action"] for e in events[2:]] == ["queue.created"]


async def test_grant_rules(client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent) -> None:
    queue = await _create(client, admin, name="Regler")
    grants_url = f"{QUEUES}/{queue['id']}/grants"
    partner = await make_agent(AgentRole.external)

    internal = await make_agent(AgentRole.supervisor)
    not_external = await client.put(f"{grants_url}/{internal.id}", headers=admin.headers)
    assert _pointers(not_external) == ["/path/agent_id"]
    assert "supervisor role, which sees every queue" in not_external.json()["detail"]

    assert (await client.put(f"{grants_url}/0", headers=admin.headers)).status_code == 404
    assert (
        await client.put(f"{QUEUES}/0/grants/{partner.id}", headers=admin.headers)
    ).status_code == 404

    for response in (
        await client.put(f"{grants_url}/{partner.id}", headers=internal.headers),
        await client.delete(f"{grants_url}/{partner.id}", headers=internal.headers),
        # A partner may not learn who else works the queue, even once granted.
        await client.get(grants_url, headers=partner.headers),
    ):
        assert response.status_code == 403, response.text
    assert (await client.get(grants_url, headers=internal.headers)).json() == []

    await client.put(f"{grants_url}/{partner.id}", headers=admin.headers)
    assert (await client.get(grants_url, headers=partner.headers)).status_code == 403
    # Grants never let a partner write.
    patch = await client.patch(
        f"{QUEUES}/{queue['id']}", headers=partner.headers, json={"name": "Mit"}
    )
    assert patch.status_code == 403


async def _mailbox(client: httpx.AsyncClient, admin: Caller, name: str) -> int:
    response = await client.post(
        "/api/v1/mailboxes",
        headers=admin.headers,
        json={
            "name": name,
            "imap_host": "imap.example.test",
            "username": "støtte@example.test",
            "password": "kodeord",
            "smtp_host": "smtp.example.test",
            "smtp_port": 587,
        },
    )
    assert response.status_code == 201, response.text
    mailbox_id: int = response.json()["id"]
    return mailbox_id


async def test_sending_mailbox_and_acknowledgement(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    mailbox_id = await _mailbox(client, admin, "Salg")
    template_id = await add_template(session)
    queue = await _create(
        client,
        admin,
        name="Webformular",
        mailbox_id=mailbox_id,
        acknowledge=True,
        acknowledgement_template_id=template_id,
    )
    assert (queue["mailbox_id"], queue["acknowledge"], queue["acknowledgement_template_id"]) == (
        mailbox_id,
        True,
        template_id,
    )
    url = f"{QUEUES}/{queue['id']}"
    assert (await client.get(url, headers=admin.headers)).json() == queue

    other_mailbox_id = await _mailbox(client, admin, "Service")
    changed = await client.patch(
        url,
        headers={**admin.headers, "If-Match": '"1"'},
        json={"mailbox_id": other_mailbox_id, "acknowledge": None},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["mailbox_id"], body["acknowledge"], body["acknowledgement_template_id"]) == (
        other_mailbox_id,
        None,
        template_id,
    )
    events = await audit_events(client, admin, entity_type="queue", action="queue.updated")
    assert (events[0]["before"]["mailbox_id"], events[0]["after"]["mailbox_id"]) == (
        mailbox_id,
        other_mailbox_id,
    )
    assert (events[0]["before"]["acknowledge"], events[0]["after"]["acknowledge"]) == (True, None)

    # A deleted mailbox leaves the queue without one.
    deleted = await client.delete(f"/api/v1/mailboxes/{other_mailbox_id}", headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin.headers)).json()["mailbox_id"] is None


async def test_unknown_mailbox_or_template_is_422_at_the_field(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    missing_mailbox = await client.post(
        QUEUES, headers=admin.headers, json={"name": "X", "mailbox_id": 0}
    )
    assert _pointers(missing_mailbox) == ["/body/mailbox_id"]
    assert "Mailbox 0" in missing_mailbox.json()["detail"]
    missing_template = await client.post(
        QUEUES, headers=admin.headers, json={"name": "X", "acknowledgement_template_id": 0}
    )
    assert _pointers(missing_template) == ["/body/acknowledgement_template_id"]
    assert "Template 0" in missing_template.json()["detail"]
    not_a_flag = await client.post(
        QUEUES, headers=admin.headers, json={"name": "X", "acknowledge": "maybe"}
    )
    assert _pointers(not_a_flag) == ["/body/acknowledge"]
    assert (await client.get(QUEUES, headers=admin.headers)).json()["items"] == []

    queue = await _create(client, admin, name="Y")
    url = f"{QUEUES}/{queue['id']}"
    for field in ("mailbox_id", "acknowledgement_template_id"):
        response = await client.patch(url, headers=admin.headers, json={field: 0})
        assert _pointers(response) == [f"/body/{field}"], field
    assert (await client.get(url, headers=admin.headers)).json()["version"] == 1
