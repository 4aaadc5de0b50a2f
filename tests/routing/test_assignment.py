"""Choosing the agent for a ticket: the strategies, the pool, and routings at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.agents.models import Agent, AgentRole
from app.customers.models import Customer
from app.queues.models import Queue, queue_grants
from app.routing.assignment import Choice, Strategy, check_agent, choose_agent
from app.routing.models import AssignmentCursor
from app.teams.models import Team, team_members
from app.tickets.models import Ticket, TicketStatus
from tests.helpers import add_ticket


async def _agent(
    session: AsyncSession,
    name: str,
    *,
    team_id: int | None = None,
    open_tickets: int = 0,
    role: AgentRole = AgentRole.agent,
    **fields: Any,
) -> int:
    """An agent (in the team, if given) with that many open tickets assigned."""
    agent = Agent(email=f"{uuid.uuid4().hex[:8]}@example.no", name=name, role=role, **fields)
    session.add(agent)
    await session.flush()
    if team_id is not None:
        await session.execute(insert(team_members).values(team_id=team_id, agent_id=agent.id))
    for _ in range(open_tickets):
        await add_ticket(session, assignee_id=agent.id)
    return agent.id


async def _team(session: AsyncSession) -> int:
    team = Team(name=f"Team {uuid.uuid4().hex[:8]}")
    session.add(team)
    await session.flush()
    return team.id


async def _queue(session: AsyncSession, **fields: Any) -> int:
    queue = Queue(name=f"Kø {uuid.uuid4().hex[:8]}", **fields)
    session.add(queue)
    await session.flush()
    return queue.id


async def _grant(session: AsyncSession, queue_id: int, agent_id: int) -> None:
    await session.execute(insert(queue_grants).values(queue_id=queue_id, agent_id=agent_id))


async def _choose(
    session: AsyncSession,
    strategy: Strategy,
    *,
    team_id: int | None = None,
    queue_id: int | None = None,
    skills: dict[str, int] | None = None,
    exclude_ticket_id: int | None = None,
) -> Choice:
    return await choose_agent(
        session,
        strategy=strategy,
        queue_id=queue_id,
        team_id=team_id,
        required_skills=skills or {},
        exclude_ticket_id=exclude_ticket_id,
    )


async def test_skills_lowest_load_ratio_then_most_to_spare_then_lowest_id(
    session: AsyncSession,
) -> None:
    team = await _team(session)
    await _agent(session, "Dagny", team_id=team, skills={"invoice": 2})  # too little
    await _agent(session, "Eir", team_id=team, skills={"invoice": 5}, open_tickets=3)
    await _agent(session, "Åsa", team_id=team, skills={"invoice": 3}, open_tickets=1)
    bjorn = await _agent(session, "Bjørn", team_id=team, skills={"invoice": 4}, open_tickets=1)
    await _agent(session, "Birk", team_id=team, skills={"invoice": 4}, open_tickets=1)

    choice = await _choose(session, Strategy.skills, team_id=team, skills={"invoice": 3})
    assert choice == Choice(bjorn, "Bjørn: skills invoice≥3, 1 of 10 open")


async def test_least_loaded_lowest_ratio_then_lowest_load_then_lowest_id(
    session: AsyncSession,
) -> None:
    team = await _team(session)
    await _agent(session, "Åsa", team_id=team, capacity=20, open_tickets=2)
    bjorn = await _agent(session, "Bjørn", team_id=team, capacity=10, open_tickets=1)
    await _agent(session, "Birk", team_id=team, capacity=10, open_tickets=1)
    await _agent(session, "Eir", team_id=team, capacity=4, open_tickets=1)

    choice = await _choose(session, Strategy.least_loaded, team_id=team)
    assert choice == Choice(bjorn, "Bjørn: least loaded, 1 of 10 open")


async def test_away_inactive_and_full_agents_are_skipped(session: AsyncSession) -> None:
    team = await _team(session)
    await _agent(session, "Åsa", team_id=team, available=False)
    await _agent(session, "Bjørn", team_id=team, active=False)
    await _agent(session, "Cecilie", team_id=team, capacity=1, open_tickets=1)
    dagny = await _agent(session, "Dagny", team_id=team, capacity=10, open_tickets=5)

    for strategy in Strategy:
        assert (await _choose(session, strategy, team_id=team)).agent_id == dagny


async def test_load_counts_new_open_and_on_hold_but_not_the_ticket_being_routed(
    session: AsyncSession,
) -> None:
    team = await _team(session)
    ole = await _agent(session, "Ole", team_id=team, capacity=4)
    for status in TicketStatus:  # one each: new, open and on hold count, the others not
        await add_ticket(session, assignee_id=ole, status=status)
    routed = await add_ticket(session, assignee_id=ole)

    choice = await _choose(session, Strategy.least_loaded, team_id=team)
    assert choice.agent_id is None
    assert choice.reason == f"nobody fits in team {team}: 1 at capacity, 0 away"

    choice = await _choose(session, Strategy.least_loaded, team_id=team, exclude_ticket_id=routed)
    assert choice == Choice(ole, "Ole: least loaded, 3 of 4 open")


async def test_pool_is_the_team_named_else_the_queues_team_else_everyone(
    session: AsyncSession,
) -> None:
    named, of_queue = await _team(session), await _team(session)
    asa = await _agent(session, "Åsa", team_id=named, open_tickets=2)
    bjorn = await _agent(session, "Bjørn", team_id=of_queue, open_tickets=2)
    cecilie = await _agent(session, "Cecilie", open_tickets=1)  # in no team
    await _agent(session, "Freja", role=AgentRole.external)  # granted nothing
    teamed = await _queue(session, team_id=of_queue)
    teamless = await _queue(session)

    async def chosen(team_id: int | None, queue_id: int | None) -> int | None:
        choice = await _choose(session, Strategy.least_loaded, team_id=team_id, queue_id=queue_id)
        return choice.agent_id

    assert await chosen(named, teamed) == asa
    assert await chosen(None, teamed) == bjorn
    assert await chosen(None, teamless) == cecilie
    assert await chosen(None, None) == cecilie


async def test_the_queues_required_skills_are_added_the_higher_level_winning(
    session: AsyncSession,
) -> None:
    queue = await _queue(session, required_skills={"invoice": 3, "danish": 2})
    await _agent(session, "Åsa", skills={"invoice": 5})
    await _agent(session, "Bjørn", skills={"invoice": 3, "danish": 5})
    cecilie = await _agent(session, "Cecilie", skills={"invoice": 4, "danish": 2}, open_tickets=4)

    for strategy in Strategy:
        choice = await _choose(session, strategy, queue_id=queue, skills={"invoice": 4})
        assert choice.agent_id == cecilie
    skills = await _choose(session, Strategy.skills, queue_id=queue, skills={"invoice": 1})
    assert skills.reason.startswith("Bjørn: skills danish≥2, invoice≥3, 0 of 10 open")


async def test_external_agents_only_for_queues_granted_to_them(session: AsyncSession) -> None:
    team = await _team(session)
    granted, other = await _queue(session, team_id=team), await _queue(session, team_id=team)
    teamless = await _queue(session)
    freja = await _agent(session, "Freja", team_id=team, role=AgentRole.external)
    await _grant(session, granted, freja)
    await _grant(session, teamless, freja)
    gunnar = await _agent(session, "Gunnar", team_id=team, open_tickets=5)

    async def chosen(queue_id: int | None, team_id: int | None = None) -> int | None:
        choice = await _choose(session, Strategy.least_loaded, team_id=team_id, queue_id=queue_id)
        return choice.agent_id

    assert await chosen(granted) == freja
    assert await chosen(teamless) == freja
    assert await chosen(other) == gunnar  # Freja is less loaded, but not granted this queue
    assert await chosen(None, team) == gunnar  # nor a ticket without a queue

    assert (await check_agent(session, agent_id=freja, queue_id=granted)).agent_id == freja
    refused = await check_agent(session, agent_id=freja, queue_id=other)
    assert refused == Choice(
        None, f"nobody fits: Freja is an external partner without a grant for queue {other}"
    )
    no_queue = await check_agent(session, agent_id=freja, queue_id=None)
    assert no_queue.agent_id is None
    assert no_queue.reason.endswith("without a grant for tickets without a queue")


async def test_nobody_fits_says_why(session: AsyncSession) -> None:
    team, empty = await _team(session), await _team(session)
    await _agent(session, "Åsa", team_id=team, skills={"invoice": 4}, available=False)
    await _agent(session, "Bjørn", team_id=team, skills={"invoice": 4}, capacity=0)
    await _agent(session, "Cecilie", team_id=team, skills={"invoice": 2})
    await _agent(session, "Dagny", team_id=team, active=False)

    choice = await _choose(session, Strategy.skills, team_id=team, skills={"invoice": 3})
    assert choice == Choice(
        None,
        f"nobody fits in team {team} (needs invoice≥3): "
        "1 at capacity, 1 away, 1 without those skills",
    )
    assert await _choose(session, Strategy.round_robin, team_id=empty) == Choice(
        None, f"nobody fits: team {empty} has no active agents"
    )


async def test_round_robin_cycles_in_id_order_and_wraps_around(session: AsyncSession) -> None:
    team = await _team(session)
    asa = await _agent(session, "Åsa", team_id=team, open_tickets=3)
    await _agent(session, "Bjørn", team_id=team, available=False)
    cecilie = await _agent(session, "Cecilie", team_id=team)
    dagny = await _agent(session, "Dagny", team_id=team, capacity=0)
    eir = await _agent(session, "Eir", team_id=team, open_tickets=1)
    queue = await _queue(session, team_id=team)

    reasons = [(await _choose(session, Strategy.round_robin, queue_id=queue)) for _ in range(4)]
    assert [choice.agent_id for choice in reasons] == [asa, cecilie, eir, asa]
    assert reasons[0].reason == f"Åsa: first turn in team {team}, 3 of 10 open"
    assert reasons[1].reason == f"Cecilie: next turn in team {team} after Åsa, 0 of 10 open"
    assert reasons[3].reason == (
        f"Åsa: next turn in team {team} after Eir, wrapping around, 3 of 10 open"
    )
    cursor = await session.scalar(
        select(AssignmentCursor.last_agent_id).where(AssignmentCursor.scope == f"team:{team}")
    )
    assert cursor == asa
    assert dagny not in {choice.agent_id for choice in reasons}


async def test_a_rule_may_name_an_active_agent_even_away_or_full(session: AsyncSession) -> None:
    asa = await _agent(session, "Åsa", available=False, capacity=1, open_tickets=1)
    bjorn = await _agent(session, "Bjørn", active=False)

    assert await check_agent(session, agent_id=asa, queue_id=None) == Choice(
        asa, "Åsa: named by the rule (away, assigned all the same)"
    )
    assert await check_agent(session, agent_id=bjorn, queue_id=None) == Choice(
        None, f"nobody fits: agent {bjorn} does not exist or is inactive"
    )


@dataclass
class Committed:
    maker: async_sessionmaker[AsyncSession]
    team_id: int
    agent_ids: list[int]
    ticket_ids: list[int]


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[Committed]:
    """A committed team of three agents who each take one ticket at most, and six unassigned
    tickets; all removed afterwards."""
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker.begin() as session:
        team_id = await _team(session)
        agent_ids = [
            await _agent(session, name, team_id=team_id, capacity=1)
            for name in ("Aino", "Bjarki", "Sigrún")
        ]
        customer = Customer(name="Samtidig Kunde")
        session.add(customer)
        await session.flush()
        ticket_ids = [await add_ticket(session, customer_id=customer.id) for _ in range(6)]
    yield Committed(maker, team_id, agent_ids, ticket_ids)
    async with maker.begin() as session:
        await session.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
        await session.execute(delete(Customer).where(Customer.id == customer.id))
        await session.execute(delete(Team).where(Team.id == team_id))
        await session.execute(delete(Agent).where(Agent.id.in_(agent_ids)))
        await session.execute(
            delete(AssignmentCursor).where(AssignmentCursor.scope == f"team:{team_id}")
        )


async def _route(committed: Committed, ticket_id: int, strategy: Strategy) -> int | None:
    """Choose and assign in one committed transaction, held open a moment so that the
    others run at the same time."""
    async with committed.maker.begin() as session:
        choice = await _choose(
            session, strategy, team_id=committed.team_id, exclude_ticket_id=ticket_id
        )
        await session.execute(
            update(Ticket).where(Ticket.id == ticket_id).values(assignee_id=choice.agent_id)
        )
        await asyncio.sleep(0.05)
    return choice.agent_id


@pytest.mark.parametrize("strategy", list(Strategy))
async def test_routings_at_once_never_overfill_an_agent(
    committed: Committed, strategy: Strategy
) -> None:
    chosen = await asyncio.gather(
        *(_route(committed, ticket_id, strategy) for ticket_id in committed.ticket_ids)
    )

    assert sorted(agent for agent in chosen if agent is not None) == committed.agent_ids
    assert chosen.count(None) == 3
    async with committed.maker() as session:
        assignees = list(
            await session.scalars(
                select(Ticket.assignee_id).where(Ticket.id.in_(committed.ticket_ids))
            )
        )
    assert sorted(a for a in assignees if a is not None) == committed.agent_ids


async def test_two_round_robin_turns_at_once_go_to_different_agents(committed: Committed) -> None:
    """The cursor exists already (so no insert makes the second wait): its lock must."""
    first, second, third = committed.ticket_ids[:3]
    async with committed.maker.begin() as session:
        await session.execute(
            update(Agent).where(Agent.id.in_(committed.agent_ids)).values(capacity=5)
        )
    await _route(committed, first, Strategy.round_robin)

    chosen = await asyncio.gather(
        _route(committed, second, Strategy.round_robin),
        _route(committed, third, Strategy.round_robin),
    )

    assert set(chosen) == set(committed.agent_ids[1:])
