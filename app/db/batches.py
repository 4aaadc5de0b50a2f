"""Clean-up deletes that many workers may run at once without waiting on each other."""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute


async def delete_in_batches(
    maker: async_sessionmaker[AsyncSession],
    key: tuple[InstrumentedAttribute[object], ...],
    condition: ColumnElement[bool],
    *,
    batch: int,
) -> int:
    """Delete the rows matching ``condition`` (identified by the ``key`` columns of one
    model), ``batch`` at a time, each batch claimed ``FOR UPDATE SKIP LOCKED`` in a transaction
    of its own, so another process purging at once takes other rows; returns how many."""
    model = key[0].class_
    claimed = select(*key).where(condition).limit(batch).with_for_update(skip_locked=True)
    deleted = 0
    while True:
        async with maker.begin() as session:
            result = await session.execute(
                delete(model)
                .where(tuple_(*key).in_(claimed))
                .execution_options(synchronize_session=False)
            )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < batch:
            return deleted
