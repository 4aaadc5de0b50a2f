"""Incremental export: every row of an exported table changed since a cursor, in a stable
order, for mirrors (CRM, ERP, BI) of millions of rows.

It reuses the event feed's technique (see ``app.events.service``): each exported row keeps
the transaction that last wrote it (``change_txid``, set on insert and by an update trigger),
each delete leaves a tombstone with its transaction, and only changes of transactions below
the oldest one still running are served, in ``(change_txid, id)`` order with the last
position as the cursor. So a change committed late is never passed over. A row changed again
after it was served moves to the end and is served again with its new state: consumers
upsert by id. Only the latest state of a row exists, so a row changed twice between two
calls is served once, as it is now.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.auth.schemas import Principal
from app.events.service import decode_position, encode_position
from app.export import repository
from app.export.models import ExportTombstone
from app.export.repository import ExportedRow
from app.export.schemas import (
    Deleted,
    ExportedCustomer,
    ExportedMessage,
    ExportedOrganisation,
    ExportedTicket,
    ExportEntity,
    ExportItem,
)
from app.tickets import service as tickets
from app.tickets.models import Message

_START = (0, 0)

_READ_MODELS: dict[ExportEntity, type[ExportedTicket | ExportedCustomer | ExportedOrganisation]] = {
    ExportEntity.tickets: ExportedTicket,
    ExportEntity.customers: ExportedCustomer,
    ExportEntity.organisations: ExportedOrganisation,
}


@dataclass(frozen=True)
class Change:
    position: tuple[int, int]
    """``(change_txid, id)``: where the change sits in the export order."""
    item: ExportItem


@dataclass(frozen=True)
class ExportBatch:
    changes: list[Change]
    next_cursor: str
    has_more: bool


async def export(
    session: AsyncSession,
    actor: Principal,
    entity: ExportEntity,
    *,
    cursor: str | None,
    limit: int,
) -> ExportBatch:
    """Up to ``limit`` changes of the entity's table after the cursor (admin only)."""
    actor.require(AgentRole.admin)
    position = decode_position(cursor, field="query.cursor") if cursor else _START
    before = await repository.horizon(session)
    # One more than asked from each source tells whether more changes are ready.
    rows = await repository.rows_after(session, entity, position, before, limit + 1)
    gone = await repository.tombstones_after(session, entity, position, before, limit + 1)
    merged = heapq.merge(
        (((txid, row.id), row) for txid, row in rows),
        (((stone.change_txid, stone.entity_id), stone) for stone in gone),
        key=lambda change: change[0],
    )
    page = list(islice(merged, limit + 1))
    has_more = len(page) > limit
    page = page[:limit]
    if page:
        position = page[-1][0]
    present = await _read(
        session, actor, entity, [row for _, row in page if not isinstance(row, ExportTombstone)]
    )
    return ExportBatch(
        changes=[
            Change(
                at,
                Deleted(id=row.entity_id, deleted_at=row.deleted_at)
                if isinstance(row, ExportTombstone)
                else present[row.id],
            )
            for at, row in page
        ],
        next_cursor=encode_position(position),
        has_more=has_more,
    )


async def _read(
    session: AsyncSession, actor: Principal, entity: ExportEntity, rows: Sequence[ExportedRow]
) -> dict[int, ExportItem]:
    """The rows as their API read models, by id."""
    if entity is ExportEntity.messages:
        # As every answer with message text shows it: sensitive values masked.
        reads = await tickets.message_reads(
            session, actor, [row for row in rows if isinstance(row, Message)]
        )
        # Already validated as MessageRead: only the `deleted` marker is added.
        return {read.id: ExportedMessage.model_construct(**dict(read)) for read in reads}
    model = _READ_MODELS[entity]
    return {row.id: model.model_validate(row) for row in rows}
