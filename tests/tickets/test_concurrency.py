"""Two writers on one ticket at the same moment, on real concurrent transactions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.agents.models import Agent, AgentRole
from app.auth.schemas import Principal
from app.customers.models import Customer
from app.tickets import service
from app.tickets.models import Message, Ticket
from app.tickets.schemas import CustomerRef, FirstMessage, MessageCreate, TicketCreate


@pytest.fixture
async def committed(
    engine: AsyncEngine,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Principal, int]]:
    """A committed agent and ticket (removed afterwards), and a session factory."""
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker.begin() as session:
        agent = Agent(email=f"{uuid.uuid4().hex[:8]}@example.fi", name="Aino", role=AgentRole.agent)
        session.add(agent)
        await session.flush()
        actor = Principal(agent_id=agent.id, label=agent.email, role=agent.role)
        ticket = await service.create_ticket(
            session,
            actor,
            TicketCreate(
                subject="Yhtä aikaa",
                customer=CustomerRef(email=f"asiakas-{uuid.uuid4().hex[:8]}@example.fi"),
                message=FirstMessage(body_text="Hei"),
            ),
        )
        ticket_id, customer_id, agent_id = ticket.id, ticket.customer_id, agent.id
    yield maker, actor, ticket_id
    async with maker.begin() as session:
        await session.execute(delete(Ticket).where(Ticket.id == ticket_id))
        await session.execute(delete(Customer).where(Customer.id == customer_id))
        await session.execute(delete(Agent).where(Agent.id == agent_id))


async def test_two_replies_at_once_both_land(
    committed: tuple[async_sessionmaker[AsyncSession], Principal, int],
) -> None:
    maker, actor, ticket_id = committed

    async def reply(text: str) -> None:
        async with maker.begin() as session:
            await service.add_message(session, actor, ticket_id, MessageCreate(body_text=text))
            await asyncio.sleep(0.2)  # hold the transaction open while the other one starts

    await asyncio.gather(reply("Ensimmäinen vastaus"), reply("Toinen vastaus"))

    async with maker() as session:
        texts = set(
            await session.scalars(select(Message.body_text).where(Message.ticket_id == ticket_id))
        )
        version = await session.scalar(select(Ticket.version).where(Ticket.id == ticket_id))
    assert texts == {"Hei", "Ensimmäinen vastaus", "Toinen vastaus"}
    assert version == 3
