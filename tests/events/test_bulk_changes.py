"""Changes made to many records at once (tags, deleted queues, teams, customers and
organisations, retention) emit an event per changed record, in the same transaction; ticket
updates mask what a subject or custom field quotes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.customers.models import Customer
from app.events.models import Event
from app.gdpr.retention import run_retention_pass
from app.organisations.models import Organisation
from app.queues.models import Queue
from app.tickets.models import TicketStatus
from tests.conftest import Caller
from tests.helpers import add_ticket

API = "/api/v1"


async def events_of(
    session: AsyncSession, type_: str, entity_ids: Collection[int]
) -> dict[int, dict[str, Any]]:
    """The ``data`` of the events of this type about these entities, by entity id."""
    rows = await session.scalars(
        select(Event).where(Event.type == type_, Event.entity_id.in_(entity_ids)).order_by(Event.id)
    )
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        assert row.entity_id is not None
        assert row.entity_id not in found, f"two {type_} events about {row.entity_id}"
        found[row.entity_id] = row.data
    return found


async def test_deleting_and_renaming_a_tag_updates_each_ticket(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    first = await add_ticket(session, tags=["gammel", "vip"])
    second = await add_ticket(session, tags=["gammel", "ny"])
    untagged = await add_ticket(session, tags=["vip"])

    renamed = await client.post(
        f"{API}/tags/gammel/rename", headers=admin.headers, json={"new_name": "ny"}
    )
    assert renamed.status_code == 200, renamed.text
    updated = await events_of(session, "ticket.updated", [first, second, untagged])
    assert {ticket_id: data["changes"] for ticket_id, data in updated.items()} == {
        first: {"tags": {"from": ["gammel", "vip"], "to": ["ny", "vip"]}},
        second: {"tags": {"from": ["gammel", "ny"], "to": ["ny"]}},
    }

    deleted = await client.delete(f"{API}/tags/vip", headers=admin.headers)
    assert deleted.status_code in (200, 204), deleted.text
    removed = await session.scalars(
        select(Event.data).where(
            Event.type == "ticket.updated", Event.entity_id.in_([first, untagged])
        )
    )
    assert [data["changes"]["tags"] for data in removed][-2:] == [
        {"from": ["ny", "vip"], "to": ["ny"]},
        {"from": ["vip"], "to": []},
    ]


async def test_deleting_a_queue_or_a_team_updates_their_tickets(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    queue = await client.post(f"{API}/queues", headers=admin.headers, json={"name": "Gammel"})
    team = await client.post(f"{API}/teams", headers=admin.headers, json={"name": "Nat"})
    queue_id, team_id = queue.json()["id"], team.json()["id"]
    in_queue = await add_ticket(session, queue_id=queue_id, team_id=team_id, assignee_id=admin.id)
    elsewhere = await add_ticket(session)

    response = await client.delete(f"{API}/queues/{queue_id}", headers=admin.headers)
    assert response.status_code == 204, response.text
    updated = await events_of(session, "ticket.updated", [in_queue, elsewhere])
    assert list(updated) == [in_queue]
    assert updated[in_queue]["changes"] == {"queue_id": {"from": queue_id, "to": None}}

    response = await client.delete(f"{API}/teams/{team_id}", headers=admin.headers)
    assert response.status_code == 204, response.text
    [*_, team_change] = await session.scalars(
        select(Event.data).where(Event.type == "ticket.updated", Event.entity_id == in_queue)
    )
    assert team_change["changes"] == {"team_id": {"from": team_id, "to": None}}
    assigned = await events_of(session, "ticket.assigned", [in_queue])
    assert assigned[in_queue] == {
        "schema_version": 1,
        "ticket_id": in_queue,
        "number": team_change["number"],
        "assignee_id": admin.id,
        "team_id": None,
        "previous_assignee_id": admin.id,
        "previous_team_id": team_id,
    }


async def test_a_merge_updates_the_moved_tickets_and_a_delete_is_an_event(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    source, target, lone = Customer(name="Kopi"), Customer(name="Original"), Customer(name="Ny")
    session.add_all([source, target, lone])
    await session.flush()
    source_id, target_id, lone_id = source.id, target.id, lone.id
    moved = [await add_ticket(session, customer_id=source_id) for _ in range(2)]

    response = await client.post(
        f"{API}/customers/{source_id}/merge",
        headers=admin.headers,
        json={"into_customer_id": target_id},
    )
    assert response.status_code == 200, response.text
    updated = await events_of(session, "ticket.updated", moved)
    assert [data["changes"] for data in updated.values()] == [
        {"customer_id": {"from": source_id, "to": target_id}}
    ] * 2

    response = await client.delete(f"{API}/customers/{lone_id}", headers=admin.headers)
    assert response.status_code == 204, response.text
    assert await events_of(session, "customer.deleted", [lone_id]) == {
        lone_id: {"schema_version": 1, "customer_id": lone_id}
    }


async def test_organisations_emit_created_updated_deleted_and_release_their_customers(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    url = f"{API}/organisations"
    created = await client.post(url, headers=admin.headers, json={"name": "Firma A/S"})
    assert created.status_code == 201, created.text
    organisation_id = created.json()["id"]
    member = Customer(name="Medarbejder", organisation_id=organisation_id)
    session.add(member)
    await session.flush()
    member_id = member.id
    patched = await client.patch(
        f"{url}/{organisation_id}", headers=admin.headers, json={"domains": ["firma.dk"]}
    )
    assert patched.status_code == 200, patched.text
    unchanged = await client.patch(
        f"{url}/{organisation_id}", headers=admin.headers, json={"domains": ["firma.dk"]}
    )
    assert unchanged.status_code == 200, unchanged.text
    deleted = await client.delete(f"{url}/{organisation_id}", headers=admin.headers)
    assert deleted.status_code == 204, deleted.text

    rows = await session.scalars(
        select(Event).where(Event.entity == "organisation", Event.entity_id == organisation_id)
    )
    assert [(row.type, row.data) for row in rows] == [
        ("organisation.created", {"schema_version": 1, "organisation_id": organisation_id}),
        (
            "organisation.updated",
            {"schema_version": 1, "organisation_id": organisation_id, "fields": ["domains"]},
        ),
        (
            "organisation.deleted",
            {"schema_version": 1, "organisation_id": organisation_id, "customers_unlinked": 1},
        ),
    ]
    assert await events_of(session, "customer.updated", [member_id]) == {
        member_id: {"schema_version": 1, "customer_id": member_id, "fields": ["organisation_id"]}
    }
    assert await session.get(Organisation, organisation_id) is None


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


async def test_retention_deletes_or_anonymises_tickets_with_an_event_each(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    kept = await client.post(
        f"{API}/queues", headers=admin.headers, json={"name": "Faktura", "retention_months": 1}
    )
    dropped = await client.post(
        f"{API}/queues",
        headers=admin.headers,
        json={"name": "Spam", "retention_months": 1, "retention_action": "delete"},
    )
    # The policies as an admin confirms them after the preview (the pass acts on nothing else).
    await session.execute(
        update(Queue)
        .where(Queue.id.in_([kept.json()["id"], dropped.json()["id"]]))
        .values(
            retention_confirmed_months=Queue.retention_months,
            retention_confirmed_action=Queue.retention_action,
        )
    )
    closed: dict[str, Any] = {"status": TicketStatus.closed, "closed_at": now - timedelta(days=90)}
    subject = "CPR 010190-1234"
    anonymised = await add_ticket(
        session, queue_id=kept.json()["id"], subject=subject, tags=["x"], **closed
    )
    gone = await add_ticket(session, queue_id=dropped.json()["id"], subject=subject, **closed)
    await session.commit()

    assert await run_retention_pass(maker, now) == 2
    [updated] = (await events_of(session, "ticket.updated", [anonymised])).values()
    assert updated["changes"] == {
        "subject": {"from": None, "to": "[erased]"},
        "tags": {"from": None, "to": []},
        "custom_fields": {"from": None, "to": {}},
    }
    [deleted] = (await events_of(session, "ticket.deleted", [gone])).values()
    assert deleted == {
        "schema_version": 1,
        "ticket_id": gone,
        "number": deleted["number"],
        "reason": "retention",
    }
    assert isinstance(deleted["number"], int)


async def test_a_ticket_update_masks_the_numbers_its_subject_and_custom_fields_quote(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    ticket_id = await add_ticket(session, subject="Faktura")
    response = await client.patch(
        f"{API}/tickets/{ticket_id}",
        headers=admin.headers,
        json={"subject": "CPR 010190-1234", "custom_fields": {"cpr": "010190-1234", "n": 3}},
    )
    assert response.status_code == 200, response.text
    [updated] = (await events_of(session, "ticket.updated", [ticket_id])).values()
    assert updated["changes"]["subject"] == {"from": "Faktura", "to": "CPR ******-**34"}
    assert updated["changes"]["custom_fields"] == {
        "from": {},
        "to": {"cpr": "******-**34", "n": 3},
    }
