from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event
from tests.conftest import MakeAgent

CUSTOMERS = "/api/v1/customers/by-external"
ORGANISATIONS = "/api/v1/organisations/by-external"


async def customer_events(session: AsyncSession, customer_id: int) -> list[Any]:
    """The customer events about this customer, in order, as ``(type, data)``."""
    rows = await session.scalars(
        select(Event)
        .where(Event.entity == "customer", Event.entity_id == customer_id)
        .order_by(Event.id)
    )
    return [(row.type, row.data) for row in rows]


async def test_put_creates_then_updates_and_repeats_idempotently(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    url = f"{CUSTOMERS}/crm/Ø-17"
    body = {"name": "Åse Kjærgård", "emails": ["Åse@Blåbær.dk"], "external_ids": {"erp": "9"}}
    created = await client.put(url, headers=agent.headers, json=body)
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["external_ids"] == {"crm": "Ø-17", "erp": "9"}
    assert customer["emails"] == ["åse@blåbær.dk"]
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"/api/v1/customers/{customer['id']}"

    updated = await client.put(
        url, headers=agent.headers, json={"name": "Åse Øster", "emails": ["åse@blåbær.dk"]}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == customer["id"]
    assert updated.json()["name"] == "Åse Øster"
    assert updated.json()["external_ids"] == {"crm": "Ø-17", "erp": "9"}
    assert updated.headers["etag"] == '"2"'

    again = await client.put(
        url, headers=agent.headers, json={"name": "Åse Øster", "emails": ["åse@blåbær.dk"]}
    )
    assert again.status_code == 200
    assert again.headers["etag"] == '"2"'

    # The events of the create and update paths, and none for the repeat.
    assert await customer_events(session, customer["id"]) == [
        (
            "customer.created",
            {"schema_version": 1, "customer_id": customer["id"], "organisation_id": None},
        ),
        (
            "customer.updated",
            {"schema_version": 1, "customer_id": customer["id"], "fields": ["name"]},
        ),
    ]


async def test_put_honours_if_match_and_refuses_a_contradicting_body(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    url = f"{CUSTOMERS}/crm/A-1"
    body = {"emails": ["kari@nordlys.no"]}
    missing = await client.put(url, headers={**agent.headers, "If-Match": '"1"'}, json=body)
    assert missing.status_code == 412
    assert (await client.put(url, headers=agent.headers, json=body)).status_code == 201
    stale = await client.put(url, headers={**agent.headers, "If-Match": '"7"'}, json=body)
    assert stale.status_code == 412
    fresh = await client.put(
        url, headers={**agent.headers, "If-Match": '"1"'}, json={**body, "phone": "+47 1"}
    )
    assert fresh.status_code == 200, fresh.text
    contradicting = await client.put(
        url, headers=agent.headers, json={**body, "external_ids": {"crm": "B-2"}}
    )
    assert contradicting.status_code == 422


async def test_lookup_by_external_id(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    agent = await make_agent("agent")
    put = await client.put(
        f"{CUSTOMERS}/crm/X-9", headers=agent.headers, json={"emails": ["per@fjord.no"]}
    )
    found = await client.get(f"{CUSTOMERS}/crm/X-9", headers=agent.headers)
    assert found.status_code == 200
    assert found.json() == put.json()
    assert found.headers["etag"] == '"1"'
    assert (await client.get(f"{CUSTOMERS}/crm/nope", headers=agent.headers)).status_code == 404


async def test_externals_are_refused(client: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    external = await make_agent("external")
    body = {"emails": ["ekstern@fjord.no"]}
    refused = await client.put(f"{CUSTOMERS}/crm/E-1", headers=external.headers, json=body)
    assert refused.status_code == 403
    looked_up = await client.get(f"{CUSTOMERS}/crm/E-1", headers=external.headers)
    assert looked_up.status_code == 403


async def test_organisations_upsert_and_lookup(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    agent = await make_agent("agent")
    url = f"{ORGANISATIONS}/erp/Ø-1"
    created = await client.put(url, headers=supervisor.headers, json={"name": "Fjord AS"})
    assert created.status_code == 201, created.text
    assert created.json()["external_ids"] == {"erp": "Ø-1"}
    updated = await client.put(
        url, headers=supervisor.headers, json={"name": "Fjord ASA", "domains": ["fjord.no"]}
    )
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["domains"] == ["fjord.no"]
    found = await client.get(url, headers=agent.headers)
    assert found.json()["name"] == "Fjord ASA"
    assert (await client.put(url, headers=agent.headers, json={"name": "X"})).status_code == 403
