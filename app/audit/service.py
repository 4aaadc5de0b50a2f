"""Audit events, written in the same transaction as the change (or the read) they describe;
sealed into a hash chain afterwards (see ``app.audit.chain``), verified and exported."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import AgentRole
from app.audit import repository
from app.audit.chain import GENESIS, link_hash
from app.audit.models import AuditChainLink, AuditEvent
from app.audit.schemas import (
    AuditEventRead,
    AuditFilters,
    AuditVerification,
    BrokenLink,
    ChainHead,
    ExportFormat,
)
from app.auth.schemas import Principal
from app.core.pagination import SortKey, next_cursor

Snapshot = dict[str, Any]

# Fields that change with every write; a change of these alone is no change worth recording.
_BOOKKEEPING = frozenset({"version", "updated_at"})


def snapshot(read_model: BaseModel) -> Snapshot:
    """A JSON-ready picture of an entity, as the API shows it."""
    return read_model.model_dump(mode="json")


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[Snapshot, Snapshot]:
    keys = [key for key in after if before.get(key) != after[key]]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    entity_type: str,
    entity_id: int | str,
    *,
    before: Snapshot | None = None,
    after: Snapshot | None = None,
) -> None:
    """Write one event; for an update pass full snapshots, only the changed fields are kept."""
    if before is not None and after is not None:
        before, after = changed_fields(before, after)
        if set(after) <= _BOOKKEEPING:
            return
    session.add(
        AuditEvent(
            actor_agent_id=actor.agent_id,
            actor_label=actor.label,
            actor_token_id=actor.token_id,
            source_ip=actor.source_ip,
            request_id=actor.request_id,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            before=before,
            after=after,
        )
    )
    await session.flush()


async def list_events(
    session: AsyncSession, actor: Principal, filters: AuditFilters, cursor: str | None, limit: int
) -> tuple[list[AuditEvent], str | None]:
    actor.require(AgentRole.admin)
    key = SortKey(AuditEvent.id, AuditEvent.id, descending=True)
    rows = await repository.list_events(session, filters, key, cursor, limit)
    return next_cursor(rows, key, limit)


async def record_read(
    session: AsyncSession,
    actor: Principal,
    entity_type: str,
    entity_id: int | str,
    *,
    action: str | None = None,
    detail: Snapshot | None = None,
) -> None:
    """Record that ``actor`` read personal data: one event per deliberate read (opening a
    record, a reveal, an export), never per list row. The action is ``<entity_type>.viewed``
    unless given (``message.revealed``); ``detail`` (what was read, the reason given) is kept
    as the event's ``after``."""
    await record(
        session, actor, action or f"{entity_type}.viewed", entity_type, entity_id, after=detail
    )


# --- the chain ---------------------------------------------------------------------------------

SEAL_BATCH = 1000
_VERIFY_BATCH = 2000


async def seal(session: AsyncSession, now: datetime, *, batch: int = SEAL_BATCH) -> int:
    """Chain up to ``batch`` settled events after the chain's head, in this transaction; how
    many (0 when another transaction is sealing: it holds the chain until it commits)."""
    if not await repository.try_lock_chain(session):
        return 0
    head = await repository.chain_head(session)
    position, previous, after = 0, GENESIS, (0, 0)
    if head:
        position, previous, after = head.position, head.hash, (head.event_txid, head.event_id)
    links = []
    for event in await repository.settled_after(session, *after, batch):
        position += 1
        previous = link_hash(previous, event)
        links.append(
            AuditChainLink(
                position=position,
                event_id=event.id,
                event_txid=event.txid,
                hash=previous,
                sealed_at=now,
            )
        )
    await repository.add_links(session, links)
    return len(links)


async def run_audit_seal_pass(
    maker: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = SEAL_BATCH
) -> int:
    """Seal every settled event, ``batch`` per transaction so the chain's lock is held
    briefly; how many were sealed. For the workers' loop and the scheduler; safe to run in
    several processes at once."""
    total = 0
    while True:
        async with maker.begin() as session:
            sealed = await seal(session, now, batch=batch)
        total += sealed
        if sealed < batch:
            return total


async def verify(
    session: AsyncSession,
    actor: Principal,
    now: datetime,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> AuditVerification:
    """Seal what is settled, then recompute every link from the first (admin). Stops at the
    first link that does not hold; ``on_progress(checked, total)`` follows the work."""
    actor.require(AgentRole.admin)
    while await seal(session, now) == SEAL_BATCH:
        pass
    total = await repository.count_links(session)
    checked, previous, head, broken = 0, GENESIS, None, None
    while broken is None:
        batch = await repository.links_after(session, checked, _VERIFY_BATCH)
        if not batch:
            break
        for link, event in batch:
            broken = _check(checked + 1, link, event, previous)
            if broken:
                break
            checked, previous = link.position, link.hash
            head = ChainHead(position=link.position, hash=link.hash)
        if on_progress:
            on_progress(checked, total)
    return AuditVerification(
        ok=broken is None,
        checked=checked,
        unsealed=await repository.count_unsealed(session),
        first_broken=broken,
        head=head,
    )


def _check(
    position: int, link: AuditChainLink, event: AuditEvent | None, previous: str
) -> BrokenLink | None:
    if link.position != position:
        return BrokenLink(
            position=position,
            event_id=None,
            problem="missing_link",
            detail=f"Links {position} to {link.position - 1} of the chain are missing.",
        )
    if event is None:
        return BrokenLink(
            position=position,
            event_id=link.event_id,
            problem="deleted",
            detail=f"Audit event {link.event_id}, sealed at {link.sealed_at.isoformat()}, "
            "was deleted.",
        )
    if link_hash(previous, event) != link.hash:
        return BrokenLink(
            position=position,
            event_id=event.id,
            problem="altered",
            detail=f"Audit event {event.id} was changed after it was sealed at "
            f"{link.sealed_at.isoformat()}: its content no longer matches the chain.",
        )
    return None


# --- export ------------------------------------------------------------------------------------

_EXPORT_BATCH = 500
_CSV_COLUMNS = list(AuditEventRead.model_fields)


async def record_export(
    session: AsyncSession, actor: Principal, filters: AuditFilters, fmt: ExportFormat
) -> None:
    """Check the actor may export (admin) and record the export itself, before any row goes
    out."""
    actor.require(AgentRole.admin)
    await record_read(
        session,
        actor,
        "audit_log",
        "export",
        action="audit.exported",
        detail={"format": fmt.value, "filters": filters.model_dump(mode="json", exclude_none=True)},
    )


async def export_lines(
    maker: async_sessionmaker[AsyncSession], filters: AuditFilters, fmt: ExportFormat
) -> AsyncIterator[str]:
    """The matching events, oldest first, as CSV (with a header) or JSON lines; read in
    batches, each in a short transaction of its own: one transaction held for a long download
    would hold back the event feed and the sealer (they wait for every older transaction).
    Events written after the export started are left out, so it ends."""
    async with maker() as session:
        up_to = await repository.newest_id(session)
    if fmt is ExportFormat.csv:
        yield _csv_line(_CSV_COLUMNS)
    after = 0
    while True:
        async with maker() as session:
            rows = await repository.events_after(session, filters, after, up_to, _EXPORT_BATCH)
        if not rows:
            return
        after = rows[-1].id
        yield "".join(_export_line(row, fmt) for row in rows)


def _export_line(event: AuditEvent, fmt: ExportFormat) -> str:
    data = AuditEventRead.model_validate(event).model_dump(mode="json")
    if fmt is ExportFormat.jsonl:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return _csv_line(
        [
            json.dumps(value, ensure_ascii=False, sort_keys=True)
            if isinstance(value, dict)
            else value
            for value in (data[column] for column in _CSV_COLUMNS)
        ]
    )


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()
