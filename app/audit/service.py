"""Audit events, written in the same transaction as the change (or the read) they describe;
sealed into a hash chain afterwards (see ``app.audit.chain``), verified and exported."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import AgentRole
from app.audit import repository
from app.audit.chain import GENESIS, content_digest, link_hash, redactions_digest
from app.audit.models import AuditChainLink, AuditEvent, AuditRedaction
from app.audit.schemas import (
    AuditEventRead,
    AuditFilters,
    AuditVerification,
    BrokenLink,
    ChainHead,
    ExportFormat,
    RedactingEvent,
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
    session.add(_new_event(actor, action, entity_type, entity_id, before, after))
    await session.flush()


def _new_event(
    actor: Principal,
    action: str,
    entity_type: str,
    entity_id: int | str,
    before: Snapshot | None,
    after: Snapshot | None,
) -> AuditEvent:
    return AuditEvent(
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


async def record_reads(
    session: AsyncSession, actor: Principal, entity_type: str, entity_ids: Collection[int]
) -> None:
    """``record_read`` for each of several records read at once (side-loaded with a page),
    written with one INSERT."""
    session.add_all(
        _new_event(actor, f"{entity_type}.viewed", entity_type, entity_id, None, None)
        for entity_id in sorted(entity_ids)
    )
    await session.flush()


# --- redaction ---------------------------------------------------------------------------------

REDACTIONS_KEY = "audit_redactions"
"""Where a redacting event's ``after`` vouches for its redactions: ``{count, digest}``."""

REDACTING_ACTIONS = frozenset({"customer.erased", "retention.applied"})
"""The only actions whose events may vouch for redactions: any other event claiming to is
ignored by ``verify``."""


@dataclass(frozen=True)
class Redaction:
    """New content for an audit event that held personal data."""

    event: AuditEvent
    before: Snapshot | None
    after: Snapshot | None


async def events_about(
    session: AsyncSession, entities: Mapping[str, Collection[int]]
) -> list[AuditEvent]:
    """The audit events about any of these entities (entity type -> ids)."""
    return await repository.events_about(
        session, {kind: [str(i) for i in ids] for kind, ids in entities.items() if ids}
    )


async def events_mentioning(session: AsyncSession, needles: Collection[str]) -> list[AuditEvent]:
    """The audit events whose content contains any of the strings (case-insensitive)."""
    return await repository.events_mentioning(session, needles) if needles else []


async def redact(
    session: AsyncSession,
    actor: Principal,
    redactions: Sequence[Redaction],
    action: str,
    entity_type: str,
    entity_id: int | str,
    *,
    after: Snapshot,
) -> None:
    """Record ``action`` (with ``after``) as the event that redacts, and replace the content
    of the given events; the only way audit content ever changes (see ``app.audit.chain``)."""
    assert action in REDACTING_ACTIONS, action
    contents: dict[int, tuple[Snapshot | None, Snapshot | None]] = {}
    pairs, previous = [], {}
    for redaction in redactions:
        event = redaction.event
        contents[event.id] = (redaction.before, redaction.after)
        previous[event.id] = content_digest(event)
        digest = content_digest(_with_content(event, redaction.before, redaction.after))
        pairs.append((event.id, digest))
    claim = {"count": len(pairs), "digest": redactions_digest(pairs)}
    redactor = _new_event(
        actor, action, entity_type, entity_id, None, after | {REDACTIONS_KEY: claim}
    )
    session.add(redactor)
    await session.flush()
    if not pairs:
        return
    rows = [
        AuditRedaction(
            event_id=event_id,
            redacted_by_event_id=redactor.id,
            previous_digest=previous[event_id],
            redacted_digest=digest,
        )
        for event_id, digest in pairs
    ]
    await repository.replace_content(session, rows, contents)


def _with_content(event: AuditEvent, before: Snapshot | None, after: Snapshot | None) -> AuditEvent:
    """A detached copy of the event with other content, to digest it as it will be."""
    copy = AuditEvent(
        **{column: getattr(event, column) for column in _EVENT_COLUMNS},
    )
    copy.before, copy.after = before, after
    return copy


_EVENT_COLUMNS = (
    "id",
    "txid",
    "occurred_at",
    "actor_agent_id",
    "actor_label",
    "actor_token_id",
    "source_ip",
    "request_id",
    "action",
    "entity_type",
    "entity_id",
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
        digest = content_digest(event)
        previous = link_hash(previous, digest)
        links.append(
            AuditChainLink(
                position=position,
                event_id=event.id,
                event_txid=event.txid,
                content_digest=digest,
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
    first link that does not hold; ``on_progress(checked, total)`` follows the work. A
    redacted event holds when a chain of recorded redactions leads from its sealed digest to
    its content and each is vouched for by a sealed redacting event (``app.audit.chain``);
    those events are listed."""
    actor.require(AgentRole.admin)
    while await seal(session, now) == SEAL_BATCH:
        pass
    total = await repository.count_links(session)
    checked, previous, head, broken = 0, GENESIS, None, None
    redacted: dict[int, tuple[int, list[AuditRedaction]]] = {}
    """Redacted event id -> its position and the redactions that lead to its content, to
    confirm once the whole chain was read."""
    claims: dict[int, tuple[int, str]] = {}
    """Checked redacting event id -> its txid and the digest of the redactions it vouches for."""
    while broken is None:
        batch = await repository.links_after(session, checked, _VERIFY_BATCH)
        if not batch:
            break
        redactions = await repository.redactions_of(
            session, [event.id for _, event in batch if event is not None]
        )
        for link, event in batch:
            path = _redaction_path(link, event, redactions.get(event.id, []) if event else [])
            broken = _check(checked + 1, link, event, previous, path)
            if broken:
                break
            assert event is not None
            if path:
                redacted[event.id] = (link.position, path)
            claim = (event.after or {}).get(REDACTIONS_KEY)
            if (
                event.action in REDACTING_ACTIONS
                and isinstance(claim, dict)
                and isinstance(claim.get("digest"), str)
            ):
                claims[event.id] = (event.txid, claim["digest"])
            checked, previous = link.position, link.hash
            head = ChainHead(position=link.position, hash=link.hash)
        if on_progress:
            on_progress(checked, total)
    if broken is None:
        broken = await _unvouched(session, redacted, claims)
    return AuditVerification(
        ok=broken is None,
        checked=checked,
        redacted=len(redacted),
        redacting_events=await _redacting_events(session, redacted),
        unsealed=await repository.count_unsealed(session),
        first_broken=broken,
        head=head,
    )


def _redaction_path(
    link: AuditChainLink, event: AuditEvent | None, redactions: list[AuditRedaction]
) -> list[AuditRedaction]:
    """The recorded redactions that lead from the sealed digest to the event's content, in
    order; empty when the content is as sealed or no such chain exists. A redaction made
    before the event was sealed starts from no sealed digest and is skipped."""
    if event is None:
        return []
    current = content_digest(event)
    if current == link.content_digest:
        return []
    digest, path = link.content_digest, []
    for redaction in redactions:
        if redaction.previous_digest == digest:
            path.append(redaction)
            digest = redaction.redacted_digest
    return path if digest == current else []


async def _unvouched(
    session: AsyncSession,
    redacted: dict[int, tuple[int, list[AuditRedaction]]],
    claims: dict[int, tuple[int, str]],
) -> BrokenLink | None:
    """The first redacted event with a redaction no sealed redacting event (of a redacting
    action, written in the same transaction) vouches for exactly."""
    by_redactor: dict[int, list[AuditRedaction]] = {}
    for _, path in redacted.values():
        for redaction in path:
            by_redactor.setdefault(redaction.redacted_by_event_id, []).append(redaction)
    for redactor, used in sorted(by_redactor.items()):
        claim = claims.get(redactor)
        if (
            claim is not None
            and all(r.txid == claim[0] for r in used)
            and claim[1] == redactions_digest(await repository.redaction_pairs(session, redactor))
        ):
            continue
        event_id = min((r.event_id for r in used), key=lambda i: redacted[i][0])
        return BrokenLink(
            position=redacted[event_id][0],
            event_id=event_id,
            problem="altered",
            detail=f"Audit event {event_id} was changed after it was sealed: it is recorded "
            f"as redacted by audit event {redactor}, which does not vouch for that redaction.",
        )
    return None


async def _redacting_events(
    session: AsyncSession, redacted: dict[int, tuple[int, list[AuditRedaction]]]
) -> list[RedactingEvent]:
    counts: dict[int, set[int]] = {}
    for event_id, (_, path) in redacted.items():
        for redaction in path:
            counts.setdefault(redaction.redacted_by_event_id, set()).add(event_id)
    return [
        RedactingEvent(
            event_id=event.id,
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            actor_label=event.actor_label,
            occurred_at=event.occurred_at,
            redacted=len(counts[event.id]),
        )
        for event in await repository.redacting_events(session, counts)
    ]


def _check(
    position: int,
    link: AuditChainLink,
    event: AuditEvent | None,
    previous: str,
    path: list[AuditRedaction],
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
    intact = bool(path) or content_digest(event) == link.content_digest
    if not intact or link_hash(previous, link.content_digest) != link.hash:
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
