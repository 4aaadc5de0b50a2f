from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.organisations.models import Organisation
from app.tickets.models import Channel, Message, MessageDirection
from tests.conftest import Caller, MakeAgent
from tests.customers.test_external_upsert import customer_events
from tests.helpers import add_ticket, audit_events

URL = "/api/v1/customers"


async def _customer(client: httpx.AsyncClient, caller: Caller, **fields: Any) -> dict[str, Any]:
    response = await client.post(URL, headers=caller.headers, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _merge(
    client: httpx.AsyncClient, caller: Caller, source: int, target: int
) -> httpx.Response:
    return await client.post(
        f"{URL}/{source}/merge", headers=caller.headers, json={"into_customer_id": target}
    )


async def test_merge_moves_tickets_messages_addresses_ids_and_organisation(
    client: httpx.AsyncClient, make_agent: MakeAgent, admin: Caller, session: AsyncSession
) -> None:
    supervisor = await make_agent("supervisor")
    organisation = Organisation(name="Blåbær A/S", domains=[], attributes={})
    session.add(organisation)
    await session.flush()
    organisation_id = organisation.id
    source = await _customer(
        client,
        supervisor,
        emails=["åse@blåbær.dk", "ase@privat.dk"],
        external_ids={"crm": "Ø-1", "erp": "E-1"},
        organisation_id=organisation_id,
    )
    target = await _customer(
        client, supervisor, emails=["aase@firma.dk"], external_ids={"crm": "Ø-2"}
    )
    tickets = [await add_ticket(session, customer_id=source["id"]) for _ in range(2)]
    kept = await add_ticket(session, customer_id=target["id"])
    session.add(
        Message(
            ticket_id=tickets[0],
            direction=MessageDirection.inbound,
            is_public=True,
            channel=Channel.email,
            author_customer_id=source["id"],
            body_text="Hej",
        )
    )
    await session.flush()

    response = await _merge(client, supervisor, source["id"], target["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tickets_moved"] == 2
    assert body["dropped_external_ids"] == {"crm": "Ø-1"}
    merged = body["customer"]
    assert merged["id"] == target["id"]
    assert merged["emails"] == ["aase@firma.dk", "åse@blåbær.dk", "ase@privat.dk"]
    assert merged["external_ids"] == {"crm": "Ø-2", "erp": "E-1"}
    assert merged["organisation_id"] == organisation_id
    assert merged["version"] == target["version"] + 1

    gone = await client.get(f"{URL}/{source['id']}", headers=supervisor.headers)
    assert gone.status_code == 404
    listed = await client.get(
        "/api/v1/tickets", headers=supervisor.headers, params={"customer_id": target["id"]}
    )
    assert sorted(t["id"] for t in listed.json()["items"]) == sorted([*tickets, kept])
    authors = await session.scalars(
        select(Message.author_customer_id).where(Message.ticket_id == tickets[0])
    )
    assert list(authors) == [target["id"]]
    assert await session.get(Customer, source["id"]) is None

    events = await customer_events(session, target["id"])
    assert events[-1] == (
        "customer.merged",
        {
            "schema_version": 1,
            "customer_id": target["id"],
            "merged_customer_id": source["id"],
            "tickets_moved": 2,
        },
    )
    (audited,) = await audit_events(
        client, admin, entity_type="customer", entity_id=str(target["id"]), action="customer.merged"
    )
    assert audited["after"] == {
        "merged_customer_id": source["id"],
        "tickets_moved": 2,
        "dropped_external_id_systems": ["crm"],
    }


async def test_merge_keeps_the_targets_organisation(
    client: httpx.AsyncClient, make_agent: MakeAgent, session: AsyncSession
) -> None:
    supervisor = await make_agent("supervisor")
    first, second = Organisation(name="A", attributes={}), Organisation(name="B", attributes={})
    session.add_all([first, second])
    await session.flush()
    source = await _customer(client, supervisor, emails=["a@a.no"], organisation_id=first.id)
    target = await _customer(client, supervisor, emails=["b@b.no"], organisation_id=second.id)
    response = await _merge(client, supervisor, source["id"], target["id"])
    assert response.status_code == 200, response.text
    assert response.json()["customer"]["organisation_id"] == target["organisation_id"]
    assert response.json()["tickets_moved"] == 0
    assert response.json()["dropped_external_ids"] == {}


async def test_merge_is_refused_for_agents_itself_and_missing_customers(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    supervisor = await make_agent("supervisor")
    source = await _customer(client, supervisor, emails=["x@x.no"])
    target = await _customer(client, supervisor, emails=["y@y.no"])
    assert (await _merge(client, agent, source["id"], target["id"])).status_code == 403
    assert (await _merge(client, supervisor, source["id"], source["id"])).status_code == 422
    assert (await _merge(client, supervisor, source["id"], 10**9)).status_code == 404
    still = await client.get(f"{URL}/{source['id']}", headers=supervisor.headers)
    assert still.status_code == 200
