from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.sla.models import SlaPolicy
from app.tickets.models import Ticket


async def get(session: AsyncSession, policy_id: int) -> SlaPolicy | None:
    return await session.get(SlaPolicy, policy_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(SlaPolicy.id).where(SlaPolicy.name == name))


async def list_policies(
    session: AsyncSession, *, key: SortKey, cursor: str | None, limit: int
) -> list[SlaPolicy]:
    return list(await session.scalars(paginate(select(SlaPolicy), key, cursor, limit)))


async def ticket_ids_held_to(session: AsyncSession, policy_id: int) -> list[int]:
    """The tickets held to the policy, by id."""
    statement = select(Ticket.id).where(Ticket.sla_policy_id == policy_id).order_by(Ticket.id)
    return list(await session.scalars(statement))
