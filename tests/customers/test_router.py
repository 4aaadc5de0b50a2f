from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.organisations.models import Organisation
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events

URL = "/api/v1/customers"


async def _create(client: httpx.AsyncClient, caller: Caller, **fields: Any) -> dict[str, Any]:
    fields.setdefault("emails", ["åse@kjærgård.test"])
    response = await client.post(URL, headers=caller.headers, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _organisation(session: AsyncSession, name: str, *domains: str) -> int:
    organisation = Organisation(name=name, domains=list(domains), attributes={})
    session.add(organisation)
    await session.flush()
    return organisation.id


async def test_create_and_get_round_trip(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    organisation_id = await _organisation(session, "Blåbær A/S")
    created = await client.post(
        URL,
        headers=agent.headers,
        json={
            "name": "Åse Kjærgård-Øster",
            "emails": ["Åse@Blåbær.DK", "ase.ostergaard@example.test", "åse@blåbær.dk"],
            "phone": "+45 12 34 56 78",
            "customer_number": "K-Æ1",
            "external_ids": {"crm": "Ø-42"},
            "organisation_id": organisation_id,
            "language": "da",
            "attributes": {"by": "Århus", "vip": True},
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    body = created.json()
    assert created.headers["location"] == f"{URL}/{body['id']}"
    assert body["name"] == "Åse Kjærgård-Øster"
    assert body["emails"] == ["åse@blåbær.dk", "ase.ostergaard@example.test"]
    assert body["phone"] == "+45 12 34 56 78"
    assert body["customer_number"] == "K-Æ1"
    assert body["external_ids"] == {"crm": "Ø-42"}
    assert body["organisation_id"] == organisation_id
    assert body["language"] == "da"
    assert body["attributes"] == {"by": "Århus", "vip": True}
    assert body["version"] == 1

    fetched = await client.get(created.headers["location"], headers=agent.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == body

    missing = await client.get(f"{URL}/987654321", headers=agent.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_invalid_bodies_are_422_with_pointers(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")

    async def pointers(response: httpx.Response) -> set[str]:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return {e["pointer"] for e in response.json()["errors"]}

    no_emails = await client.post(URL, headers=agent.headers, json={"name": "Åse", "emails": []})
    assert await pointers(no_emails) == {"/body/emails"}
    missing = await client.post(URL, headers=agent.headers, json={"name": "Åse"})
    assert await pointers(missing) == {"/body/emails"}
    bad = await client.post(
        URL,
        headers=agent.headers,
        json={
            "emails": ["ok@example.test", "not-an-address"],
            "name": "",
            "external_ids": {"Bad System": "1"},
            "attributes": "x",
        },
    )
    assert await pointers(bad) == {
        "/body/emails/1",
        "/body/name",
        "/body/external_ids/Bad System/[key]",
        "/body/attributes",
    }
    # A misspelt field is refused, not silently dropped.
    typo = await client.post(
        URL, headers=agent.headers, json={"emails": ["a@example.test"], "nmae": "Åse"}
    )
    assert await pointers(typo) == {"/body/nmae"}
    unknown_organisation = await client.post(
        URL, headers=agent.headers, json={"emails": ["a@example.test"], "organisation_id": 987654}
    )
    assert await pointers(unknown_organisation) == {"/body/organisation_id"}
    assert "987654" in unknown_organisation.json()["detail"]

    body = await _create(client, agent)
    url = f"{URL}/{body['id']}"
    nulled = await client.patch(url, headers=agent.headers, json={"emails": None})
    assert await pointers(nulled) == {"/body/emails"}
    patch_typo = await client.patch(url, headers=agent.headers, json={"phnoe": "+45 1234"})
    assert await pointers(patch_typo) == {"/body/phnoe"}
    unknown = await client.patch(url, headers=agent.headers, json={"organisation_id": 987654})
    assert await pointers(unknown) == {"/body/organisation_id"}


async def test_clashes_are_409_naming_the_other_customer(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    first = await _create(
        client,
        agent,
        emails=["søren@example.test"],
        customer_number="K-1",
        external_ids={"crm": "C-1"},
    )
    clashes = [
        {"emails": ["ny@example.test", "SØREN@example.test"]},
        {"emails": ["ny@example.test"], "customer_number": "K-1"},
        {"emails": ["ny@example.test"], "external_ids": {"crm": "C-1"}},
    ]
    for fields in clashes:
        response = await client.post(URL, headers=agent.headers, json=fields)
        assert response.status_code == 409, fields
        problem = response.json()
        assert f"customer {first['id']}" in problem["detail"], fields
        assert problem["customer_id"] == first["id"]
    assert (
        "søren@example.test"
        in (await client.post(URL, headers=agent.headers, json=clashes[0])).json()["detail"]
    )

    second = await _create(client, agent, emails=["ny@example.test"])
    url = f"{URL}/{second['id']}"
    for fields in clashes:
        response = await client.patch(url, headers=agent.headers, json=fields)
        assert response.status_code == 409, fields
        assert response.json()["customer_id"] == first["id"]

    # A customer's own values are no clash.
    own = await client.patch(
        f"{URL}/{first['id']}",
        headers=agent.headers,
        json={
            "emails": ["søren@example.test", "s2@example.test"],
            "customer_number": "K-1",
            "external_ids": {"crm": "C-1"},
        },
    )
    assert own.status_code == 200, own.text
    assert own.json()["emails"] == ["søren@example.test", "s2@example.test"]


async def test_update_replaces_lists_and_clears_with_null(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    organisation_id = await _organisation(session, "Ørsted")
    body = await _create(
        client,
        agent,
        name="Bjørn",
        emails=["a@example.test", "b@example.test", "c@example.test"],
        phone="112",
        external_ids={"crm": "1", "erp": "2"},
        attributes={"farve": "blå"},
    )
    url = f"{URL}/{body['id']}"

    # Swap the primary address and drop one: the kept addresses keep their rows.
    reordered = await client.patch(
        url,
        headers={**agent.headers, "If-Match": '"1"'},
        json={"emails": ["c@example.test", "a@example.test", "Ø@example.test"]},
    )
    assert reordered.status_code == 200, reordered.text
    assert reordered.headers["etag"] == '"2"'
    assert reordered.json()["emails"] == ["c@example.test", "a@example.test", "ø@example.test"]
    fetched = await client.get(url, headers=agent.headers)
    assert fetched.json()["emails"] == ["c@example.test", "a@example.test", "ø@example.test"]

    changed = await client.patch(
        url,
        headers={**agent.headers, "If-Match": '"2"'},
        json={
            "name": "Bjørn Ærlig",
            "phone": None,
            "organisation_id": organisation_id,
            "external_ids": {"crm": "1", "erp": "3"},
            "attributes": {"farve": "rød"},
            "language": "sv",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"3"'
    result = changed.json()
    assert result["name"] == "Bjørn Ærlig"
    assert result["phone"] is None
    assert result["organisation_id"] == organisation_id
    assert result["external_ids"] == {"crm": "1", "erp": "3"}
    assert result["attributes"] == {"farve": "rød"}
    assert result["language"] == "sv"
    assert result["emails"] == ["c@example.test", "a@example.test", "ø@example.test"]

    # The old addresses are free again; external ids alone also move the version.
    reused = await _create(client, agent, emails=["b@example.test"])
    assert reused["emails"] == ["b@example.test"]
    ids_only = await client.patch(url, headers=agent.headers, json={"external_ids": {}})
    assert ids_only.headers["etag"] == '"4"'
    assert ids_only.json()["external_ids"] == {}

    cleared = await client.patch(
        url, headers=agent.headers, json={"name": None, "organisation_id": None}
    )
    assert cleared.status_code == 200
    assert cleared.json()["name"] is None
    assert cleared.json()["organisation_id"] is None


async def test_stale_if_match_is_412(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    supervisor = await make_agent("supervisor")
    body = await _create(client, supervisor)
    url = f"{URL}/{body['id']}"
    first = await client.patch(
        url, headers={**supervisor.headers, "If-Match": '"1"'}, json={"name": "Ny"}
    )
    assert first.status_code == 200
    stale = await client.patch(
        url, headers={**supervisor.headers, "If-Match": '"1"'}, json={"name": "Gammel"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["current_version"] == 2
    stale_delete = await client.delete(url, headers={**supervisor.headers, "If-Match": '"1"'})
    assert stale_delete.status_code == 412
    assert (await client.get(url, headers=supervisor.headers)).json()["name"] == "Ny"


async def test_organisation_is_linked_by_the_primary_address_domain(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    blaabaer = await _organisation(session, "Blåbær", "blåbær.dk", "blaabaer.test")
    await _organisation(session, "Delt 1", "shared.test")
    await _organisation(session, "Delt 2", "shared.test")
    other = await _organisation(session, "Andet")

    linked = await _create(client, agent, emails=["ÅSE@BLÅBÆR.DK"])
    assert linked["organisation_id"] == blaabaer
    by_secondary = await _create(client, agent, emails=["x@example.test", "y@blaabaer.test"])
    assert by_secondary["organisation_id"] is None
    ambiguous = await _create(client, agent, emails=["z@shared.test"])
    assert ambiguous["organisation_id"] is None
    explicit_null = await _create(client, agent, emails=["n@blåbær.dk"], organisation_id=None)
    assert explicit_null["organisation_id"] is None
    explicit = await _create(client, agent, emails=["o@blåbær.dk"], organisation_id=other)
    assert explicit["organisation_id"] == other

    # Changing addresses later does not relink.
    patched = await client.patch(
        f"{URL}/{by_secondary['id']}", headers=agent.headers, json={"emails": ["p@blåbær.dk"]}
    )
    assert patched.json()["organisation_id"] is None


async def test_lookup_by_email_and_external_id(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    body = await _create(
        client,
        agent,
        emails=["første@example.test", "anden@example.test"],
        external_ids={"crm": "Æ-9"},
    )
    lookup = f"{URL}/lookup"

    for params in (
        {"email": "ANDEN@example.test"},
        {"email": "første@EXAMPLE.test"},
        {"system": "crm", "external_id": "Æ-9"},
    ):
        found = await client.get(lookup, headers=agent.headers, params=params)
        assert found.status_code == 200, params
        assert found.json()["id"] == body["id"]
        assert found.headers["etag"] == '"1"'

    for params in ({"email": "ukendt@example.test"}, {"system": "crm", "external_id": "Æ-10"}):
        assert (await client.get(lookup, headers=agent.headers, params=params)).status_code == 404

    for params in ({}, {"external_id": "Æ-9"}, {"email": "anden@example.test", "system": "crm"}):
        unclear = await client.get(lookup, headers=agent.headers, params=params)
        assert unclear.status_code == 422, params
        assert unclear.json()["errors"][0]["pointer"] == "/query"
    bad = await client.get(lookup, headers=agent.headers, params={"email": "nope"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/query/email"


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    organisation_id = await _organisation(session, "Ørsted")
    aase = await _create(
        client,
        agent,
        name="Åse Ærlig",
        emails=["aase@example.test", "post@ærlig.test"],
        organisation_id=organisation_id,
    )
    bjorn = await _create(client, agent, name="Bjørn", emails=["bjorn@kunde.test"])
    nameless = await _create(
        client, agent, emails=["100%_sikker@example.test"], customer_number="K-7"
    )

    async def ids(**params: Any) -> list[int]:
        response = await client.get(URL, headers=agent.headers, params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids() == [aase["id"], bjorn["id"], nameless["id"]]
    assert await ids(email="POST@ærlig.test") == [aase["id"]]
    assert await ids(email="aase@example") == []
    assert await ids(q="ÆRLIG") == [aase["id"]]
    assert await ids(q="bjØrn") == [bjorn["id"]]
    assert await ids(q="kunde.test") == [bjorn["id"]]
    assert await ids(q="%_") == [nameless["id"]]
    assert await ids(q="example.test") == [aase["id"], nameless["id"]]
    assert await ids(organisation_id=organisation_id) == [aase["id"]]
    assert await ids(customer_number="K-7") == [nameless["id"]]
    assert await ids(customer_number="K-8") == []

    first = (await client.get(URL, headers=agent.headers, params={"limit": 2})).json()
    assert [c["id"] for c in first["items"]] == [aase["id"], bjorn["id"]]
    assert first["items"][0]["emails"] == ["aase@example.test", "post@ærlig.test"]
    rest = await client.get(
        URL, headers=agent.headers, params={"limit": 2, "cursor": first["next_cursor"]}
    )
    assert [c["id"] for c in rest.json()["items"]] == [nameless["id"]]
    assert rest.json()["next_cursor"] is None

    bad = await client.get(URL, headers=agent.headers, params={"email": "no at sign"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/query/email"


async def test_roles(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    agent = await make_agent("agent")
    external = await make_agent("external")
    supervisor = await make_agent("supervisor")
    body = await _create(client, agent)
    url = f"{URL}/{body['id']}"

    assert (await client.get(url, headers=external.headers)).status_code == 403
    assert (await client.get(URL, headers=external.headers)).status_code == 403
    external_lookup = await client.get(
        f"{URL}/lookup", headers=external.headers, params={"email": body["emails"][0]}
    )
    assert external_lookup.status_code == 403
    refused = await client.post(URL, headers=external.headers, json={"emails": ["e@example.test"]})
    assert refused.status_code == 403
    assert (
        await client.patch(url, headers=external.headers, json={"name": "X"})
    ).status_code == 403
    assert (await client.get(url)).status_code == 401

    updated = await client.patch(url, headers=agent.headers, json={"name": "Agentens ændring"})
    assert updated.status_code == 200
    agent_delete = await client.delete(url, headers=agent.headers)
    assert agent_delete.status_code == 403
    assert "supervisor" in agent_delete.json()["detail"]
    assert (await client.get(url, headers=agent.headers)).status_code == 200

    assert (await client.delete(url, headers=supervisor.headers)).status_code == 204
    assert (await client.get(url, headers=agent.headers)).status_code == 404
    assert (await client.delete(url, headers=supervisor.headers)).status_code == 404


async def test_delete_is_refused_while_the_customer_has_tickets(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    supervisor = await make_agent("supervisor")
    body = await _create(client, supervisor)
    await add_ticket(session, customer_id=body["id"])
    await add_ticket(session, customer_id=body["id"])

    refused = await client.delete(f"{URL}/{body['id']}", headers=supervisor.headers)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == (
        f"Customer {body['id']} has 2 ticket(s) and cannot be deleted while they exist."
    )
    assert refused.json()["ticket_count"] == 2
    assert (await client.get(f"{URL}/{body['id']}", headers=supervisor.headers)).status_code == 200


async def test_changes_are_audited(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller
) -> None:
    agent = await make_agent("agent")
    supervisor = await make_agent("supervisor")
    body = await _create(client, agent, name="Åse", emails=["åse@example.test"])
    url = f"{URL}/{body['id']}"
    await client.patch(
        url, headers=agent.headers, json={"name": "Åse Ø", "emails": ["ny@example.test"]}
    )
    await client.patch(url, headers=agent.headers, json={"name": "Åse Ø"})  # no change
    await client.delete(url, headers=supervisor.headers)

    deleted, updated, created = await audit_events(
        client, admin, entity_type="customer", entity_id=str(body["id"])
    )
    assert created["action"] == "customer.created"
    assert created["actor_agent_id"] == agent.id
    assert created["before"] is None
    assert created["after"]["name"] == "Åse"
    assert created["after"]["emails"] == ["åse@example.test"]
    assert updated["action"] == "customer.updated"
    assert updated["before"]["name"] == "Åse"
    assert updated["before"]["emails"] == ["åse@example.test"]
    assert updated["after"]["name"] == "Åse Ø"
    assert updated["after"]["emails"] == ["ny@example.test"]
    assert "phone" not in updated["after"]
    assert deleted["action"] == "customer.deleted"
    assert deleted["actor_agent_id"] == supervisor.id
    # No personal data: the audit log outlives the customer and cannot be erased.
    assert deleted["before"] == {"id": body["id"], "ticket_count": 0}
    assert deleted["after"] is None


async def test_blocking_a_customer_needs_a_supervisor(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    supervisor = await make_agent("supervisor")
    body = await _create(client, agent, emails=["spam@example.test"])
    assert body["blocked"] is False
    url = f"{URL}/{body['id']}"

    refused = await client.patch(url, headers=agent.headers, json={"blocked": True})
    assert refused.status_code == 403
    assert "supervisor" in refused.json()["detail"]
    # Sending it along unchanged is no change an agent may not make.
    renamed = await client.patch(
        url, headers=agent.headers, json={"blocked": False, "name": "Reklame"}
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["blocked"]) == ("Reklame", False)
    null = await client.patch(url, headers=supervisor.headers, json={"blocked": None})
    assert null.status_code == 422
    assert [e["pointer"] for e in null.json()["errors"]] == ["/body/blocked"]
    on_create = await client.post(
        URL, headers=supervisor.headers, json={"emails": ["ny@example.test"], "blocked": True}
    )
    assert on_create.status_code == 422

    blocked = await client.patch(
        url, headers={**supervisor.headers, "If-Match": '"2"'}, json={"blocked": True}
    )
    assert blocked.status_code == 200, blocked.text
    assert (blocked.json()["blocked"], blocked.json()["version"]) == (True, 3)
    # Agents see it, on the customer and in lists.
    assert (await client.get(url, headers=agent.headers)).json()["blocked"] is True
    listed = await client.get(URL, headers=agent.headers, params={"email": "spam@example.test"})
    assert [c["blocked"] for c in listed.json()["items"]] == [True]
    stored = await session.get(Customer, body["id"], populate_existing=True)
    assert stored is not None
    assert stored.blocked is True

    unblocked = await client.patch(url, headers=admin.headers, json={"blocked": False})
    assert unblocked.json()["blocked"] is False

    events = await audit_events(client, admin, entity_type="customer", action="customer.updated")
    assert [(e["before"]["blocked"], e["after"]["blocked"]) for e in events[:2]] == [
        (True, False),
        (False, True),
    ]
    assert (events[0]["actor_agent_id"], events[1]["actor_agent_id"]) == (admin.id, supervisor.id)
