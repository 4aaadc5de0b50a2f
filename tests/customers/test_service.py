"""The service functions the tickets domain and ingestion call directly."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.core.errors import Invalid
from app.customers import service
from app.customers.schemas import CustomerCreate, CustomerUpdate
from app.organisations.models import Organisation
from tests.conftest import Caller

ACTOR = system_principal("ingest")


async def test_resolve_by_id(session: AsyncSession) -> None:
    created = await service.create_customer(
        session, ACTOR, CustomerCreate(name="Åse", emails=["åse@example.test"])
    )
    resolved = await service.resolve_customer(
        session, ACTOR, customer_id=created.id, email="other@example.test", name="Other"
    )
    assert resolved.id == created.id
    assert resolved.name == "Åse"


async def test_resolve_by_unknown_id_is_invalid(session: AsyncSession) -> None:
    with pytest.raises(Invalid) as raised:
        await service.resolve_customer(session, ACTOR, customer_id=987654321, email=None, name=None)
    assert raised.value.detail == "Customer 987654321 does not exist."
    assert raised.value.field == "body.customer.id"


async def test_resolve_without_id_or_email_is_invalid(session: AsyncSession) -> None:
    with pytest.raises(Invalid):
        await service.resolve_customer(session, ACTOR, customer_id=None, email=None, name="Åse")


async def test_resolve_finds_by_any_address(session: AsyncSession) -> None:
    created = await service.create_customer(
        session,
        ACTOR,
        CustomerCreate(name="Bjørn", emails=["bjørn@example.test", "b2@example.test"]),
    )
    resolved = await service.resolve_customer(
        session, ACTOR, customer_id=None, email="b2@example.test", name="Another Name"
    )
    assert resolved.id == created.id
    assert resolved.name == "Bjørn"


async def test_resolve_creates_linked_and_audited_customer(
    session: AsyncSession, client: httpx.AsyncClient, admin: Caller
) -> None:
    organisation = Organisation(name="Blåbær", domains=["blåbær.dk"], attributes={})
    session.add(organisation)
    await session.flush()

    created = await service.resolve_customer(
        session, ACTOR, customer_id=None, email="søren@blåbær.dk", name="Søren Ærø"
    )
    assert created.name == "Søren Ærø"
    assert [row.email for row in created.emails] == ["søren@blåbær.dk"]
    assert created.organisation_id == organisation.id
    again = await service.resolve_customer(
        session, ACTOR, customer_id=None, email="søren@blåbær.dk", name=None
    )
    assert again.id == created.id

    nameless = await service.resolve_customer(
        session, ACTOR, customer_id=None, email="anon@example.test", name=""
    )
    assert nameless.name is None
    assert nameless.organisation_id is None

    events = await client.get(
        "/api/v1/audit-events",
        headers=admin.headers,
        params={"entity_type": "customer", "entity_id": str(created.id)},
    )
    (event,) = events.json()["items"]
    assert event["action"] == "customer.created"
    assert event["actor_label"] == "ingest"
    assert event["after"]["emails"] == ["søren@blåbær.dk"]
    assert event["after"]["organisation_id"] == organisation.id


async def test_primary_email_is_the_first_address(session: AsyncSession) -> None:
    customer = await service.create_customer(
        session, ACTOR, CustomerCreate(emails=["første@example.test", "anden@example.test"])
    )
    assert await service.primary_email(session, customer.id) == "første@example.test"

    await service.update_customer(
        session,
        ACTOR,
        customer.id,
        CustomerUpdate(emails=["anden@example.test", "første@example.test"]),
        None,
    )
    assert await service.primary_email(session, customer.id) == "anden@example.test"

    await service.update_customer(session, ACTOR, customer.id, CustomerUpdate(emails=[]), None)
    assert await service.primary_email(session, customer.id) is None
    assert await service.primary_email(session, 987654321) is None


async def test_blocked_among(session: AsyncSession) -> None:
    blocked = await service.create_customer(
        session, ACTOR, CustomerCreate(emails=["spam@example.test", "mere-spam@example.test"])
    )
    await service.create_customer(session, ACTOR, CustomerCreate(emails=["kunde@example.test"]))
    await service.update_customer(
        session, ACTOR, blocked.id, CustomerUpdate(blocked=True), expected_version=None
    )
    found = await service.blocked_among(
        session, ["Spam@Example.TEST", "kunde@example.test", "ukendt@example.test"]
    )
    assert found == frozenset({"spam@example.test"})
    assert await service.blocked_among(session, []) == frozenset()
