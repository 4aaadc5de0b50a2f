from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events

URL = "/api/v1/organisations"


async def _create(client: httpx.AsyncClient, caller: Caller, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "Søstrene Ørsted ApS")
    response = await client.post(URL, headers=caller.headers, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_get_update_delete_round_trip(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller
) -> None:
    supervisor = await make_agent("supervisor")
    created = await client.post(
        URL,
        headers=supervisor.headers,
        json={
            "name": "Søstrene Ørsted ApS",
            "domains": ["Blåbær.DK", " ørsted.test", "blåbær.dk"],
            "external_ids": {"crm": "Å-17", "erp": "9001"},
            "attributes": {"segment": "smørrebrød", "tier": 2},
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    body = created.json()
    assert created.headers["location"] == f"{URL}/{body['id']}"
    assert body["name"] == "Søstrene Ørsted ApS"
    assert body["domains"] == ["blåbær.dk", "ørsted.test"]
    assert body["external_ids"] == {"crm": "Å-17", "erp": "9001"}
    assert body["attributes"] == {"segment": "smørrebrød", "tier": 2}
    assert body["version"] == 1
    url = f"{URL}/{body['id']}"

    fetched = await client.get(created.headers["location"], headers=supervisor.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == body

    renamed = await client.patch(
        url,
        headers={**supervisor.headers, "If-Match": '"1"'},
        json={"name": "Ærø Åkande A/S", "domains": ["ærø.test"]},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["etag"] == '"2"'
    assert renamed.json()["name"] == "Ærø Åkande A/S"
    assert renamed.json()["domains"] == ["ærø.test"]
    assert renamed.json()["external_ids"] == {"crm": "Å-17", "erp": "9001"}

    # Only child rows change here: the version must still move, or ETags would lie.
    relinked = await client.patch(
        url,
        headers={**supervisor.headers, "If-Match": '"2"'},
        json={"external_ids": {"crm": "Å-18", "hubspot": "h1"}},
    )
    assert relinked.status_code == 200, relinked.text
    assert relinked.headers["etag"] == '"3"'
    assert relinked.json()["external_ids"] == {"crm": "Å-18", "hubspot": "h1"}
    again = await client.get(url, headers=supervisor.headers)
    assert again.json()["external_ids"] == {"crm": "Å-18", "hubspot": "h1"}

    deleted = await client.delete(url, headers=supervisor.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=supervisor.headers)).status_code == 404

    actions = [
        e["action"]
        for e in await audit_events(
            client, admin, entity_type="organisation", entity_id=str(body["id"])
        )
    ]
    assert actions == [
        "organisation.deleted",
        "organisation.updated",
        "organisation.updated",
        "organisation.created",
    ]


async def test_audit_events_hold_snapshots(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller
) -> None:
    supervisor = await make_agent("supervisor")
    body = await _create(
        client,
        supervisor,
        domains=["nord.test"],
        external_ids={"crm": "1"},
        attributes={"kontakt": "Åse Ørsted, +45 12 34 56 78"},
    )
    url = f"{URL}/{body['id']}"
    await client.patch(url, headers=supervisor.headers, json={"name": "Nørre Å"})
    await client.patch(url, headers=supervisor.headers, json={"name": "Nørre Å"})  # no change
    await client.delete(url, headers=supervisor.headers)

    deleted, updated, created = await audit_events(
        client, admin, entity_type="organisation", entity_id=str(body["id"])
    )
    assert created["action"] == "organisation.created"
    assert created["actor_agent_id"] == supervisor.id
    assert created["after"]["name"] == "Søstrene Ørsted ApS"
    assert created["after"]["external_ids"] == {"crm": "1"}
    assert updated["action"] == "organisation.updated"
    assert updated["before"]["name"] == "Søstrene Ørsted ApS"
    assert updated["after"]["name"] == "Nørre Å"
    assert "domains" not in updated["after"]
    assert deleted["action"] == "organisation.deleted"
    # The company's name and domains; not the free-form attributes, which may name people
    # and would outlive the organisation in the audit log.
    assert deleted["before"] == {
        "id": body["id"],
        "name": "Nørre Å",
        "domains": ["nord.test"],
        "customer_ids": [],
    }
    assert deleted["after"] is None


async def test_invalid_bodies_are_422_with_pointers(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    response = await client.post(
        URL,
        headers=supervisor.headers,
        json={
            "name": "",
            "domains": ["ok.test", "not a domain", "someone@blåbær.dk"],
            "external_ids": {"CRM": "1", "erp": ""},
            "attributes": [],
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {
        "/body/name",
        "/body/domains/1",
        "/body/domains/2",
        "/body/external_ids/CRM/[key]",
        "/body/external_ids/erp",
        "/body/attributes",
    }

    typo = await client.post(URL, headers=supervisor.headers, json={"nmae": "Fjord AS"})
    assert typo.status_code == 422
    assert {e["pointer"] for e in typo.json()["errors"]} == {"/body/name", "/body/nmae"}

    body = await _create(client, supervisor)
    patch_typo = await client.patch(
        f"{URL}/{body['id']}", headers=supervisor.headers, json={"domain": ["fjord.no"]}
    )
    assert patch_typo.status_code == 422
    assert {e["pointer"] for e in patch_typo.json()["errors"]} == {"/body/domain"}
    nulled = await client.patch(
        f"{URL}/{body['id']}", headers=supervisor.headers, json={"name": None, "domains": None}
    )
    assert nulled.status_code == 422
    assert {e["pointer"] for e in nulled.json()["errors"]} == {"/body/name", "/body/domains"}


async def test_external_id_taken_by_another_organisation_is_409(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    first = await _create(client, supervisor, external_ids={"crm": "A-17"})
    clash = await client.post(
        URL, headers=supervisor.headers, json={"name": "Åbo", "external_ids": {"crm": "A-17"}}
    )
    assert clash.status_code == 409
    problem = clash.json()
    assert f"organisation {first['id']}" in problem["detail"]
    assert problem["organisation_id"] == first["id"]

    # The same id in another system is no clash, nor is keeping one's own id.
    second = await _create(client, supervisor, name="Åbo", external_ids={"erp": "A-17"})
    kept = await client.patch(
        f"{URL}/{first['id']}",
        headers=supervisor.headers,
        json={"external_ids": {"crm": "A-17", "erp2": "x"}},
    )
    assert kept.status_code == 200, kept.text
    patched = await client.patch(
        f"{URL}/{second['id']}", headers=supervisor.headers, json={"external_ids": {"crm": "A-17"}}
    )
    assert patched.status_code == 409
    assert patched.json()["organisation_id"] == first["id"]


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
    stale_delete = await client.delete(url, headers={**supervisor.headers, "If-Match": '"1"'})
    assert stale_delete.status_code == 412
    current = await client.get(url, headers=supervisor.headers)
    assert current.json()["name"] == "Ny"


async def test_list_filters_and_pages(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    supervisor = await make_agent("supervisor")
    orsted = await _create(client, supervisor, name="Søstrene Ørsted", domains=["orsted.test"])
    aero = await _create(client, supervisor, name="Ærø Færger", domains=["ærø.test"])
    await _create(client, supervisor, name="100% Kaffe_bar", domains=["kaffe.test"])

    async def names(**params: Any) -> list[str]:
        response = await client.get(URL, headers=supervisor.headers, params=params)
        assert response.status_code == 200, response.text
        return [o["name"] for o in response.json()["items"]]

    assert await names(q="ØRSTED") == ["Søstrene Ørsted"]
    assert await names(q="færger") == ["Ærø Færger"]
    assert await names(q="%") == ["100% Kaffe_bar"]
    assert await names(q="e_b") == ["100% Kaffe_bar"]
    assert await names(domain="ÆRØ.test") == ["Ærø Færger"]
    assert await names(domain="nowhere.test") == []

    first = await client.get(URL, headers=supervisor.headers, params={"limit": 2})
    page = first.json()
    assert [o["id"] for o in page["items"]] == [orsted["id"], aero["id"]]
    assert page["next_cursor"]
    rest = await client.get(
        URL, headers=supervisor.headers, params={"limit": 2, "cursor": page["next_cursor"]}
    )
    assert [o["name"] for o in rest.json()["items"]] == ["100% Kaffe_bar"]
    assert rest.json()["next_cursor"] is None

    bad = await client.get(URL, headers=supervisor.headers, params={"domain": "no domain"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/query/domain"


async def test_lookup_by_domain_and_external_id(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    body = await _create(
        client, supervisor, domains=["blåbær.dk", "shared.test"], external_ids={"crm": "Ø-1"}
    )
    lookup = f"{URL}/lookup"

    by_domain = await client.get(lookup, headers=supervisor.headers, params={"domain": "BLÅBÆR.dk"})
    assert by_domain.status_code == 200, by_domain.text
    assert by_domain.json()["id"] == body["id"]
    assert by_domain.headers["etag"] == '"1"'

    by_id = await client.get(
        lookup, headers=supervisor.headers, params={"system": "crm", "external_id": "Ø-1"}
    )
    assert by_id.status_code == 200
    assert by_id.json()["id"] == body["id"]

    for params in ({"domain": "other.test"}, {"system": "crm", "external_id": "Ø-2"}):
        missing = await client.get(lookup, headers=supervisor.headers, params=params)
        assert missing.status_code == 404, params

    for params in ({}, {"system": "crm"}, {"domain": "blåbær.dk", "system": "crm"}):
        unclear = await client.get(lookup, headers=supervisor.headers, params=params)
        assert unclear.status_code == 422, params
        assert unclear.json()["errors"][0]["pointer"] == "/query"

    other = await _create(client, supervisor, name="Delt", domains=["shared.test"])
    ambiguous = await client.get(
        lookup, headers=supervisor.headers, params={"domain": "shared.test"}
    )
    assert ambiguous.status_code == 409
    assert ambiguous.json()["organisation_ids"] == [body["id"], other["id"]]


async def test_roles(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    supervisor = await make_agent("supervisor")
    agent = await make_agent("agent")
    external = await make_agent("external")
    body = await _create(client, supervisor, domains=["roles.test"])
    url = f"{URL}/{body['id']}"

    assert (await client.get(url, headers=agent.headers)).status_code == 200
    assert (await client.get(URL, headers=agent.headers)).status_code == 200
    lookup = await client.get(
        f"{URL}/lookup", headers=agent.headers, params={"domain": "roles.test"}
    )
    assert lookup.status_code == 200

    for caller in (agent, external):
        create = await client.post(URL, headers=caller.headers, json={"name": "Nej"})
        assert create.status_code == 403, caller.role
        patch = await client.patch(url, headers=caller.headers, json={"name": "Nej"})
        assert patch.status_code == 403, caller.role
        delete = await client.delete(url, headers=caller.headers)
        assert delete.status_code == 403, caller.role

    assert (await client.get(url, headers=external.headers)).status_code == 403
    assert (await client.get(URL, headers=external.headers)).status_code == 403
    external_lookup = await client.get(
        f"{URL}/lookup", headers=external.headers, params={"domain": "roles.test"}
    )
    assert external_lookup.status_code == 403
    assert (await client.get(url)).status_code == 401

    assert (await client.get(url, headers=supervisor.headers)).json()["name"] == body["name"]


async def test_missing_organisation_is_404(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    url = f"{URL}/987654321"
    assert (await client.get(url, headers=supervisor.headers)).status_code == 404
    patched = await client.patch(url, headers=supervisor.headers, json={"name": "X"})
    assert patched.status_code == 404
    assert (await client.delete(url, headers=supervisor.headers)).status_code == 404


async def test_delete_keeps_customers_without_organisation(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession, admin: Caller
) -> None:
    supervisor = await make_agent("supervisor")
    body = await _create(client, supervisor, domains=["gone.test"])
    customer = await client.post(
        "/api/v1/customers", headers=supervisor.headers, json={"emails": ["åse@gone.test"]}
    )
    assert customer.status_code == 201, customer.text
    assert customer.json()["organisation_id"] == body["id"]
    other = await client.post(
        "/api/v1/customers", headers=supervisor.headers, json={"emails": ["bo@elsewhere.test"]}
    )
    assert other.json()["organisation_id"] is None

    deleted = await client.delete(f"{URL}/{body['id']}", headers=supervisor.headers)
    assert deleted.status_code == 204
    # The test shares one session across requests; a real request starts with a fresh one.
    session.expire_all()
    after = await client.get(
        f"/api/v1/customers/{customer.json()['id']}", headers=supervisor.headers
    )
    assert after.status_code == 200
    assert after.json()["organisation_id"] is None
    assert after.json()["emails"] == ["åse@gone.test"]
    # Unlinking changed the customer: its ETag moved, so a client's stale copy gets 412.
    assert after.headers["etag"] != customer.headers["etag"]
    assert after.json()["version"] == customer.json()["version"] + 1
    untouched = await client.get(
        f"/api/v1/customers/{other.json()['id']}", headers=supervisor.headers
    )
    assert untouched.headers["etag"] == other.headers["etag"]

    (event, *_) = await audit_events(
        client, admin, entity_type="organisation", entity_id=str(body["id"])
    )
    assert event["action"] == "organisation.deleted"
    assert event["before"]["customer_ids"] == [customer.json()["id"]]
