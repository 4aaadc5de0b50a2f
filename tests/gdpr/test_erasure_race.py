"""Erasure against mail in flight, on two connections to a committed database of its own: a
reply from the person that arrives while their erasure runs waits for it, then opens a new
ticket under a new customer instead of landing in the emptied records."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.schemas import system_principal
from app.customers.models import Customer
from app.gdpr import service as subject_rights
from app.tickets.models import Message, Ticket
from tests.helpers import build_mail
from tests.ingest.test_service import ingest_raw

Maker = async_sessionmaker[AsyncSession]
SENDER = "Karen Blixen Lund <karen.lund@example.dk>"


@pytest.fixture
def maker(committed_database: tuple[str, Maker]) -> Maker:
    return committed_database[1]


async def test_a_reply_arriving_during_the_erasure_opens_a_new_ticket_for_a_new_customer(
    maker: Maker,
) -> None:
    async with maker.begin() as session:
        first = await ingest_raw(session, build_mail(sender=SENDER, body="Min adresse er ..."))
        assert first.ticket_id is not None
        ticket = await session.get(Ticket, first.ticket_id)
        assert ticket is not None
        erased_id, number = ticket.customer_id, ticket.number
    reply = build_mail(
        sender=SENDER, subject=f"Re: [#{number}] Fakturaen er forkert", body="Glem det."
    )

    async def ingest_reply() -> int | None:
        async with maker.begin() as session:
            return (await ingest_raw(session, reply)).ticket_id

    async with maker() as erasing:
        await subject_rights.erase_customer(
            erasing, system_principal("privacy-officer"), erased_id, "By request"
        )
        arriving = asyncio.create_task(ingest_reply())
        # The mail is read and its customer found; it waits for the erasure's row lock.
        done, _ = await asyncio.wait([arriving], timeout=0.5)
        assert not done
        await erasing.commit()
    reply_ticket = await arriving

    async with maker() as session:
        assert reply_ticket is not None
        assert reply_ticket != first.ticket_id
        new = await session.get(Ticket, reply_ticket)
        erased = await session.get(Customer, erased_id)
        left = await session.scalars(select(Message.id).where(Message.ticket_id == first.ticket_id))
    assert new is not None
    assert new.customer_id != erased_id
    assert erased is not None
    assert erased.erased_at is not None
    assert erased.name is None
    assert list(left) == [], "nothing of the person in the erased ticket"
