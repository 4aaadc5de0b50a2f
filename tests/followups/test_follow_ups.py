"""Follow-ups: a ticket parked as pending comes back on time, once, whatever happens in between."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.agents.models import Agent, AgentRole
from app.auth.schemas import Principal
from app.customers.models import Customer
from app.events.models import Event
from app.followups import service
from app.followups.scheduler import run_follow_up_pass
from app.followups.schemas import FollowUpSet
from app.tickets.models import Ticket, TicketStatus
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events, build_mail
from tests.ingest.test_service import ingest_raw


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """What the scheduler gets, on the test's rolled-back transaction."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


async def due_events(session: AsyncSession, ticket_id: int) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(Event.data)
        .where(Event.type == "ticket.follow_up_due", Event.entity_id == ticket_id)
        .order_by(Event.id)
    )
    return list(rows)


async def ticket_status(client: httpx.AsyncClient, caller: Caller, ticket_id: int) -> str:
    response = await client.get(f"/api/v1/tickets/{ticket_id}", headers=caller.headers)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def set_follow_up(
    client: httpx.AsyncClient, caller: Caller, ticket_id: int, **body: Any
) -> dict[str, Any]:
    response = await client.put(
        f"/api/v1/tickets/{ticket_id}/follow-up", headers=caller.headers, json=body
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_follow_up_parks_the_ticket_and_brings_it_back_on_time(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
    admin: Caller,
) -> None:
    agent = await make_agent()
    ticket_id = await add_ticket(session, assignee_id=agent.id)
    before = datetime.now(UTC)
    follow_up = await set_follow_up(
        client, agent, ticket_id, note="Ring tilbage om fakturaen", **{"in": "P3D"}
    )
    due_at = datetime.fromisoformat(follow_up["due_at"])
    assert before + timedelta(days=3) <= due_at <= datetime.now(UTC) + timedelta(days=3)
    assert follow_up["agent_id"] == agent.id
    assert follow_up["fired"] is False
    assert await ticket_status(client, agent, ticket_id) == "pending"

    assert await run_follow_up_pass(maker, due_at - timedelta(seconds=1)) == 0
    session.expire_all()
    assert await ticket_status(client, agent, ticket_id) == "pending"
    assert await due_events(session, ticket_id) == []

    assert await run_follow_up_pass(maker, due_at) == 1
    session.expire_all()
    ticket = await client.get(f"/api/v1/tickets/{ticket_id}", headers=agent.headers)
    assert (ticket.json()["status"], ticket.json()["assignee_id"]) == ("open", agent.id)
    [event] = await due_events(session, ticket_id)
    assert event["note"] == "Ring tilbage om fakturaen"
    assert (event["agent_id"], event["reopened"]) == (agent.id, True)
    shown = await client.get(f"/api/v1/tickets/{ticket_id}/follow-up", headers=agent.headers)
    assert shown.json()["fired"] is True, "it stays until the agent clears it"
    [audited] = await audit_events(
        client, admin, entity_type="ticket", entity_id=str(ticket_id), action="ticket.follow_up_due"
    )
    assert audited["after"]["reopened"] is True

    assert await run_follow_up_pass(maker, due_at + timedelta(days=1)) == 0, "fires once"

    cleared = await client.delete(f"/api/v1/tickets/{ticket_id}/follow-up", headers=agent.headers)
    assert cleared.status_code == 204
    gone = await client.get(f"/api/v1/tickets/{ticket_id}/follow-up", headers=agent.headers)
    assert gone.status_code == 404


async def test_a_customer_mail_reopens_at_once_and_the_reminder_still_fires_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
) -> None:
    agent = await make_agent()
    first = await ingest_raw(session, build_mail())
    assert first.ticket_id is not None
    due_at = datetime.now(UTC) + timedelta(days=2)
    await set_follow_up(
        client, agent, first.ticket_id, due_at=due_at.isoformat(), note="Ring torsdag kl. 10"
    )
    assert await ticket_status(client, agent, first.ticket_id) == "pending"

    thanks = build_mail(
        body="Tak!", message_id="<tak@example.dk>", headers={"In-Reply-To": "<m1@example.dk>"}
    )
    assert (await ingest_raw(session, thanks)).ticket_id == first.ticket_id
    assert await ticket_status(client, agent, first.ticket_id) == "open"
    shown = await client.get(f"/api/v1/tickets/{first.ticket_id}/follow-up", headers=agent.headers)
    assert shown.status_code == 200, "a customer's thanks does not cancel the reminder"

    assert await run_follow_up_pass(maker, due_at + timedelta(minutes=1)) == 1
    assert await run_follow_up_pass(maker, due_at + timedelta(minutes=2)) == 0
    session.expire_all()
    [event] = await due_events(session, first.ticket_id)
    assert event["reopened"] is False
    assert await ticket_status(client, agent, first.ticket_id) == "open"


async def test_a_new_follow_up_replaces_the_current_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
) -> None:
    agent = await make_agent()
    ticket_id = await add_ticket(session)
    await set_follow_up(client, agent, ticket_id, note="Om en time", **{"in": "PT1H"})
    later = await set_follow_up(client, agent, ticket_id, note="Om to dage", **{"in": "P2D"})
    assert later["agent_id"] == agent.id, "unassigned: the reminder is for whoever set it"

    assert await run_follow_up_pass(maker, datetime.now(UTC) + timedelta(hours=2)) == 0
    shown = await client.get(f"/api/v1/tickets/{ticket_id}/follow-up", headers=agent.headers)
    assert shown.json()["note"] == "Om to dage"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"in": "PT0S", "note": "nu"}, "in"),
        ({"due_at": "2020-01-01T10:00:00+01:00", "note": "før"}, "due_at"),
    ],
)
async def test_a_follow_up_must_be_in_the_future(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, body: Any, field: str
) -> None:
    ticket_id = await add_ticket(session)
    response = await client.put(
        f"/api/v1/tickets/{ticket_id}/follow-up", headers=admin.headers, json=body
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == [f"/body/{field}"]


@pytest.mark.parametrize(
    "body",
    [
        {"in": 3600, "note": "sekunder?"},
        {"in": "P1D", "due_at": "2030-01-01T10:00:00Z", "note": "begge"},
        {"note": "ingen tid"},
        {"due_at": "2030-01-01T10:00:00", "note": "uden tidszone"},
    ],
)
async def test_a_follow_up_needs_one_clear_time(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, body: Any
) -> None:
    ticket_id = await add_ticket(session)
    response = await client.put(
        f"/api/v1/tickets/{ticket_id}/follow-up", headers=admin.headers, json=body
    )
    assert response.status_code == 422, response.text


@pytest.fixture
async def committed(
    engine: AsyncEngine,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], list[int]]]:
    """Committed tickets with reminders due (removed afterwards), on real connections."""
    maker = async_sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC)
    async with maker.begin() as session:
        agent = Agent(email=f"{uuid.uuid4().hex[:8]}@example.se", name="Sven", role=AgentRole.agent)
        customer = Customer(name="Kund")
        session.add_all([agent, customer])
        await session.flush()
        actor = Principal(agent_id=agent.id, label=agent.email, role=agent.role)
        ticket_ids = []
        for _ in range(30):
            ticket_id = await add_ticket(session, customer_id=customer.id)
            await service.set_follow_up(
                session, actor, ticket_id, FollowUpSet(note="Ring", **{"in": "PT1M"}), now=now
            )
            ticket_ids.append(ticket_id)
        agent_id, customer_id = agent.id, customer.id
    yield maker, ticket_ids
    async with maker.begin() as session:
        await session.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
        await session.execute(delete(Customer).where(Customer.id == customer_id))
        await session.execute(delete(Agent).where(Agent.id == agent_id))


async def test_two_passes_at_once_fire_each_reminder_once(
    committed: tuple[async_sessionmaker[AsyncSession], list[int]],
) -> None:
    maker, ticket_ids = committed
    later = datetime.now(UTC) + timedelta(minutes=5)
    fired = await asyncio.gather(
        run_follow_up_pass(maker, later, batch=7), run_follow_up_pass(maker, later, batch=7)
    )

    assert sum(fired) == 30
    async with maker() as session:
        fired_for = Counter(
            await session.scalars(
                select(Event.entity_id).where(
                    Event.type == "ticket.follow_up_due", Event.entity_id.in_(ticket_ids)
                )
            )
        )
        statuses = set(
            await session.scalars(select(Ticket.status).where(Ticket.id.in_(ticket_ids)))
        )
    assert fired_for == Counter(ticket_ids)
    assert statuses == {TicketStatus.open}


async def test_tickets_bring_their_current_follow_up_along_when_asked(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent
) -> None:
    agent = await make_agent()
    parked, other = await add_ticket(session), await add_ticket(session)
    await set_follow_up(client, agent, parked, note="Ring tilbage", **{"in": "P1D"})

    one = await client.get(
        f"/api/v1/tickets/{parked}", headers=agent.headers, params={"include": "follow_up"}
    )
    assert one.status_code == 200, one.text
    assert one.json()["included"]["follow_ups"][str(parked)]["note"] == "Ring tilbage"
    listed = await client.get(
        "/api/v1/tickets", headers=agent.headers, params={"include": "follow_up"}
    )
    assert listed.status_code == 200, listed.text
    follow_ups = listed.json()["included"]["follow_ups"]
    assert str(parked) in follow_ups
    assert str(other) not in follow_ups


async def test_an_unassigned_ticket_comes_back_assigned_to_the_agent_who_set_the_reminder(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
    admin: Caller,
) -> None:
    agent = await make_agent()
    ticket_id = await add_ticket(session)
    due_at = datetime.now(UTC) + timedelta(hours=2)
    await set_follow_up(client, agent, ticket_id, due_at=due_at.isoformat(), note="Ring op")

    assert await run_follow_up_pass(maker, due_at) == 1
    session.expire_all()
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=agent.headers)).json()
    assert (ticket["status"], ticket["assignee_id"]) == ("open", agent.id)
    [event] = await due_events(session, ticket_id)
    assert event["agent_id"] == agent.id
    changes = await audit_events(
        client, admin, entity_type="ticket", entity_id=str(ticket_id), action="ticket.updated"
    )
    assert any(c["after"].get("assignee_id") == agent.id for c in changes), "audited"


async def test_a_reassigned_ticket_reminds_its_assignee_of_the_moment(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
) -> None:
    setter = await make_agent(name="Sætter")
    successor = await make_agent(name="Efterfølger")
    ticket_id = await add_ticket(session, assignee_id=setter.id)
    due_at = datetime.now(UTC) + timedelta(hours=2)
    await set_follow_up(client, setter, ticket_id, due_at=due_at.isoformat(), note="Ring op")
    moved = await client.patch(
        f"/api/v1/tickets/{ticket_id}",
        headers=setter.headers,
        json={"assignee_id": successor.id},
    )
    assert moved.status_code == 200, moved.text

    assert await run_follow_up_pass(maker, due_at) == 1
    session.expire_all()
    [event] = await due_events(session, ticket_id)
    assert event["agent_id"] == successor.id
    shown = await client.get(f"/api/v1/tickets/{ticket_id}/follow-up", headers=setter.headers)
    assert shown.json()["agent_id"] == successor.id
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=setter.headers)).json()
    assert ticket["assignee_id"] == successor.id


async def test_a_reminder_that_fails_is_pushed_back_and_the_others_fire(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
    admin: Caller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = await make_agent()
    broken, fine = [await add_ticket(session, assignee_id=agent.id) for _ in range(2)]
    due_at = datetime.now(UTC) + timedelta(hours=1)
    for ticket_id in (broken, fine):
        await set_follow_up(client, agent, ticket_id, due_at=due_at.isoformat(), note="Ring")
    fire = service.fire

    async def fire_or_fail(session: AsyncSession, follow_up: Any, now: datetime) -> None:
        await fire(session, follow_up, now)
        if follow_up.ticket_id == broken:
            raise RuntimeError("a bug in one reminder")

    monkeypatch.setattr(service, "fire", fire_or_fail)
    assert await run_follow_up_pass(maker, due_at) == 1
    session.expire_all()
    assert await ticket_status(client, agent, fine) == "open"
    assert await ticket_status(client, agent, broken) == "pending", "rolled back alone"
    assert await due_events(session, broken) == []
    shown = await client.get(f"/api/v1/tickets/{broken}/follow-up", headers=agent.headers)
    assert datetime.fromisoformat(shown.json()["due_at"]) == due_at + timedelta(minutes=5)
    [failed] = await audit_events(
        client, admin, entity_type="ticket", entity_id=str(broken), action="ticket.follow_up_failed"
    )
    assert failed["after"]["error"] == "RuntimeError: a bug in one reminder"

    monkeypatch.setattr(service, "fire", fire)
    assert await run_follow_up_pass(maker, due_at + timedelta(minutes=1)) == 0, "pushed back"
    assert await run_follow_up_pass(maker, due_at + timedelta(minutes=5)) == 1
