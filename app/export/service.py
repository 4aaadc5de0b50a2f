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
from dataclasses import dataclass
from itertools import islice

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.auth.schemas import Principal
from app.events.service import decode_position, encode_position
from app.export import repository
from app.export.models import ExportTombstone
from app.export.repository import ExportedRow
from app.export.schemas import ExportEntity

_START = (0, 0)


@dataclass(frozen=True)
class ExportBatch:
    changes: list[ExportedRow | ExportTombstone]
    """The rows as stored now, and tombstones of rows deleted, in export order."""
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
    return ExportBatch(
        changes=[item for _, item in page],
        next_cursor=encode_position(position),
        has_more=has_more,
    )
