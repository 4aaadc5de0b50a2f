from __future__ import annotations

from sqlalchemy import exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.jobs.models import BulkJob, BulkJobItem, BulkJobItemState, BulkJobState

_PENDING = BulkJobItem.state == BulkJobItemState.pending
_WORKABLE = (BulkJobState.queued, BulkJobState.running)


async def add(session: AsyncSession, job: BulkJob, ticket_ids: list[int]) -> None:
    session.add(job)
    await session.flush()
    if ticket_ids:
        await session.execute(
            insert(BulkJobItem), [{"job_id": job.id, "ticket_id": t} for t in ticket_ids]
        )


async def get(session: AsyncSession, job_id: int, *, for_update: bool = False) -> BulkJob | None:
    statement = select(BulkJob).where(BulkJob.id == job_id)
    if for_update:
        # Another transaction may have moved the counters since this session read the row.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(statement)


async def list_items(
    session: AsyncSession,
    job_id: int,
    state: BulkJobItemState | None,
    *,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[BulkJobItem]:
    statement = select(BulkJobItem).where(BulkJobItem.job_id == job_id)
    if state is not None:
        statement = statement.where(BulkJobItem.state == state)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def claim_pending(session: AsyncSession, limit: int) -> list[BulkJobItem]:
    """Up to ``limit`` pending items of one job still to be worked on (the oldest with items
    no other worker holds), locked for this transaction, in ticket order: two workers lock
    the tickets of overlapping jobs in the same order, so they never deadlock."""
    job_id = await session.scalar(
        select(BulkJobItem.job_id)
        .join(BulkJob, BulkJob.id == BulkJobItem.job_id)
        .where(_PENDING, BulkJob.state.in_(_WORKABLE))
        .order_by(BulkJobItem.job_id)
        .limit(1)
        .with_for_update(skip_locked=True, of=BulkJobItem)
    )
    if job_id is None:
        return []
    statement = (
        select(BulkJobItem)
        .where(BulkJobItem.job_id == job_id, _PENDING)
        .order_by(BulkJobItem.ticket_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(statement))


async def has_pending(session: AsyncSession, job_id: int) -> bool:
    return bool(
        await session.scalar(select(exists().where(BulkJobItem.job_id == job_id, _PENDING)))
    )
