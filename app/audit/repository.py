from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    Text,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import REDACTION_SETTING
from app.audit.models import AuditChainLink, AuditEvent, AuditRedaction
from app.audit.schemas import AuditFilters
from app.core.pagination import SortKey, paginate

_OLDEST_RUNNING = literal_column(
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint", BigInteger
)
"""The oldest transaction still running when the statement started (as in the event feed)."""

_SEAL_LOCK = func.hashtext("audit-chain")


def _filtered(filters: AuditFilters) -> Select[Any]:
    statement = select(AuditEvent)
    if filters.entity_type:
        statement = statement.where(AuditEvent.entity_type == filters.entity_type)
    if filters.entity_id:
        statement = statement.where(AuditEvent.entity_id == filters.entity_id)
    if filters.actor_agent_id is not None:
        statement = statement.where(AuditEvent.actor_agent_id == filters.actor_agent_id)
    if filters.actor_label:
        statement = statement.where(AuditEvent.actor_label == filters.actor_label)
    if filters.action:
        statement = statement.where(AuditEvent.action == filters.action)
    if filters.occurred_after:
        statement = statement.where(AuditEvent.occurred_at >= filters.occurred_after)
    if filters.occurred_before:
        statement = statement.where(AuditEvent.occurred_at < filters.occurred_before)
    return statement


async def list_events(
    session: AsyncSession, filters: AuditFilters, key: SortKey, cursor: str | None, limit: int
) -> list[AuditEvent]:
    return list(await session.scalars(paginate(_filtered(filters), key, cursor, limit)))


async def newest_id(session: AsyncSession) -> int:
    return await session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0


async def events_after(
    session: AsyncSession, filters: AuditFilters, after_id: int, up_to_id: int, limit: int
) -> list[AuditEvent]:
    """The matching events with ``after_id < id <= up_to_id``, oldest first."""
    statement = (
        _filtered(filters)
        .where(AuditEvent.id > after_id, AuditEvent.id <= up_to_id)
        .order_by(AuditEvent.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def try_lock_chain(session: AsyncSession) -> bool:
    """The chain's lock until the transaction ends, if no other transaction holds it."""
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(_SEAL_LOCK))))


async def chain_head(session: AsyncSession) -> AuditChainLink | None:
    statement = select(AuditChainLink).order_by(AuditChainLink.position.desc()).limit(1)
    return await session.scalar(statement)


async def settled_after(
    session: AsyncSession, txid: int, event_id: int, limit: int
) -> list[AuditEvent]:
    """Events after the position ``(txid, event_id)`` whose transactions all ended, in
    ``(txid, id)`` order."""
    statement = (
        select(AuditEvent)
        .where(
            AuditEvent.txid < _OLDEST_RUNNING,
            tuple_(AuditEvent.txid, AuditEvent.id)
            > tuple_(literal(txid, BigInteger), literal(event_id, BigInteger)),
        )
        .order_by(AuditEvent.txid, AuditEvent.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def add_links(session: AsyncSession, links: Sequence[AuditChainLink]) -> None:
    session.add_all(links)
    await session.flush()


async def count_links(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(AuditChainLink)) or 0


async def links_after(
    session: AsyncSession, position: int, limit: int
) -> list[tuple[AuditChainLink, AuditEvent | None]]:
    """Links after ``position`` in order, each with its event (None when it is gone)."""
    statement = (
        select(AuditChainLink, AuditEvent)
        .outerjoin(AuditEvent, AuditEvent.id == AuditChainLink.event_id)
        .where(AuditChainLink.position > position)
        .order_by(AuditChainLink.position)
        .limit(limit)
    )
    return [(row.AuditChainLink, row.AuditEvent) for row in await session.execute(statement)]


async def count_unsealed(session: AsyncSession) -> int:
    linked = select(AuditChainLink.position).where(AuditChainLink.event_id == AuditEvent.id)
    statement = select(func.count()).select_from(AuditEvent).where(~linked.exists())
    return await session.scalar(statement) or 0


async def redactions_of(
    session: AsyncSession, event_ids: Sequence[int]
) -> dict[int, list[AuditRedaction]]:
    """The events' redactions, each event's in the order they were made."""
    statement = (
        select(AuditRedaction)
        .where(AuditRedaction.event_id.in_(event_ids))
        .order_by(AuditRedaction.id)
    )
    found: dict[int, list[AuditRedaction]] = {}
    for redaction in await session.scalars(statement):
        found.setdefault(redaction.event_id, []).append(redaction)
    return found


async def redaction_pairs(
    session: AsyncSession, redacted_by_event_id: int
) -> list[tuple[int, str]]:
    statement = select(AuditRedaction.event_id, AuditRedaction.redacted_digest).where(
        AuditRedaction.redacted_by_event_id == redacted_by_event_id
    )
    return [(row.event_id, row.redacted_digest) for row in await session.execute(statement)]


async def is_sealed(session: AsyncSession, event_id: int) -> bool:
    statement = select(AuditChainLink.position).where(AuditChainLink.event_id == event_id)
    return await session.scalar(statement) is not None


_REPLACE_BATCH = 500

_EVENTS = AuditEvent.metadata.tables[AuditEvent.__tablename__]
# On the table, not the entity: a list of parameters then runs as one executemany, not the
# ORM's update by primary key.
_REPLACE = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(
        before=bindparam("new_before", type_=JSONB(none_as_null=True)),
        after=bindparam("new_after", type_=JSONB(none_as_null=True)),
    )
)


async def replace_content(
    session: AsyncSession,
    redactions: Sequence[AuditRedaction],
    contents: dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]],
) -> None:
    """Record the redactions, then replace the events' content under the redaction setting
    (the database refuses the UPDATE otherwise, or for an event without its redaction in
    this transaction), ``_REPLACE_BATCH`` events per statement."""
    session.add_all(redactions)
    await session.flush()
    await session.execute(select(func.set_config(REDACTION_SETTING, "on", True)))
    rows = [
        {"event_id": event_id, "new_before": before, "new_after": after}
        for event_id, (before, after) in contents.items()
    ]
    for start in range(0, len(rows), _REPLACE_BATCH):
        await session.execute(_REPLACE, rows[start : start + _REPLACE_BATCH])
    await session.execute(select(func.set_config(REDACTION_SETTING, "off", True)))


async def redacting_events(session: AsyncSession, event_ids: Collection[int]) -> list[AuditEvent]:
    statement = select(AuditEvent).where(AuditEvent.id.in_(event_ids)).order_by(AuditEvent.id)
    return list(await session.scalars(statement))


async def event_exists(session: AsyncSession, event_id: int) -> bool:
    return await session.get(AuditEvent, event_id) is not None


async def events_about(session: AsyncSession, entities: dict[str, list[str]]) -> list[AuditEvent]:
    if not entities:
        return []
    statement = (
        select(AuditEvent)
        .where(
            or_(
                *(
                    (AuditEvent.entity_type == kind) & AuditEvent.entity_id.in_(ids)
                    for kind, ids in entities.items()
                )
            )
        )
        .order_by(AuditEvent.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def events_mentioning(session: AsyncSession, needles: Collection[str]) -> list[AuditEvent]:
    content = func.concat(cast(AuditEvent.before, Text), cast(AuditEvent.after, Text))
    statement = (
        select(AuditEvent)
        .where(or_(*(content.icontains(needle, autoescape=True) for needle in needles)))
        .order_by(AuditEvent.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))
