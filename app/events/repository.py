from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, literal, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event

_OLDEST_RUNNING = literal_column(
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint", BigInteger
)
"""The oldest transaction still running when the statement started: every transaction below it
has ended, so no event of such a transaction can still appear."""


async def settled_after(
    session: AsyncSession, txid: int, event_id: int, types: Sequence[str], limit: int
) -> list[Event]:
    """Events after the position ``(txid, event_id)`` whose transactions all ended, in
    ``(txid, id)`` order."""
    statement = (
        select(Event)
        .where(
            Event.txid < _OLDEST_RUNNING,
            tuple_(Event.txid, Event.id)
            > tuple_(literal(txid, BigInteger), literal(event_id, BigInteger)),
        )
        .order_by(Event.txid, Event.id)
        .limit(limit)
    )
    if types:
        statement = statement.where(Event.type.in_(types))
    return list(await session.scalars(statement))


_OWN_TRANSACTION = literal_column("pg_current_xact_id_if_assigned()::text::bigint", BigInteger)


async def settled_or_own_after(
    session: AsyncSession, txid: int, event_id: int, limit: int
) -> list[tuple[Event, bool]]:
    """Like ``settled_after``, plus the events this very transaction wrote (it sees them, and
    whatever it derives from them commits or rolls back with them); each with whether it is
    settled for everyone."""
    statement = (
        select(Event, (Event.txid < _OLDEST_RUNNING).label("settled"))
        .where(
            (Event.txid < _OLDEST_RUNNING) | (Event.txid == _OWN_TRANSACTION),
            tuple_(Event.txid, Event.id)
            > tuple_(literal(txid, BigInteger), literal(event_id, BigInteger)),
        )
        .order_by(Event.txid, Event.id)
        .limit(limit)
    )
    return [(row.Event, row.settled) for row in await session.execute(statement)]
