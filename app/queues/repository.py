from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import array, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.db.locks import lock_values
from app.queues.models import CustomerFields, Queue, queue_grants


async def get(session: AsyncSession, queue_id: int) -> Queue | None:
    return await session.get(Queue, queue_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(Queue.id).where(Queue.name == name))


async def list_queues(
    session: AsyncSession,
    *,
    only_ids: Collection[int] | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[Queue]:
    statement = select(Queue)
    if only_ids is not None:
        statement = statement.where(Queue.id.in_(only_ids))
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def lock_addresses(session: AsyncSession, addresses: Collection[str]) -> None:
    """Serialise writers of the same inbound addresses until the transaction ends.

    No constraint can keep an address in one queue's array only, so a check-then-write could
    race; a transaction-scoped advisory lock per address closes that gap.
    """
    await lock_values(session, "queue-address", addresses)


async def find_address_owners(
    session: AsyncSession, addresses: Collection[str], *, exclude_id: int | None
) -> list[Queue]:
    """Queues (other than ``exclude_id``) that hold any of the addresses."""
    statement = (
        select(Queue)
        .where(Queue.inbound_addresses.overlap(array(list(addresses))))
        .order_by(Queue.id)
    )
    if exclude_id is not None:
        statement = statement.where(Queue.id != exclude_id)
    return list(await session.scalars(statement))


async def release_team(session: AsyncSession, team_id: int) -> list[int]:
    """Detach the queues of a team that is going away, as a change of each queue (version and
    ``updated_at`` move); returns their ids."""
    changed = await session.scalars(
        update(Queue)
        .where(Queue.team_id == team_id)
        .values(team_id=None, version=Queue.version + 1)
        .returning(Queue.id)
        .execution_options(synchronize_session="fetch")
    )
    return sorted(changed)


async def list_grants(session: AsyncSession, queue_id: int) -> list[int]:
    return list(
        await session.scalars(
            select(queue_grants.c.agent_id)
            .where(queue_grants.c.queue_id == queue_id)
            .order_by(queue_grants.c.agent_id)
        )
    )


async def add_grant(
    session: AsyncSession, queue_id: int, agent_id: int, customer_fields: CustomerFields
) -> bool:
    """Grant the queue to the agent, or change what the grant shows of customers; False when
    it was granted already just so."""
    statement = insert(queue_grants).values(
        queue_id=queue_id, agent_id=agent_id, customer_fields=customer_fields
    )
    changed = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=[queue_grants.c.queue_id, queue_grants.c.agent_id],
            set_={"customer_fields": statement.excluded.customer_fields},
            where=queue_grants.c.customer_fields != statement.excluded.customer_fields,
        ).returning(queue_grants.c.agent_id)
    )
    return changed is not None


async def remove_grant(session: AsyncSession, queue_id: int, agent_id: int) -> bool:
    """Withdraw the grant; False when there was none."""
    removed = await session.scalar(
        delete(queue_grants)
        .where(queue_grants.c.queue_id == queue_id, queue_grants.c.agent_id == agent_id)
        .returning(queue_grants.c.agent_id)
    )
    return removed is not None


async def customer_fields(session: AsyncSession, agent_id: int) -> dict[int, CustomerFields]:
    rows = await session.execute(
        select(queue_grants.c.queue_id, queue_grants.c.customer_fields).where(
            queue_grants.c.agent_id == agent_id
        )
    )
    return {queue_id: fields for queue_id, fields in rows}


async def granted_queue_ids(session: AsyncSession, agent_id: int) -> frozenset[int]:
    rows = await session.scalars(
        select(queue_grants.c.queue_id).where(queue_grants.c.agent_id == agent_id)
    )
    return frozenset(rows)
