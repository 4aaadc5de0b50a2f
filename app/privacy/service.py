"""Sensitive values in messages: found when a message is saved, masked in every read, shown
on purpose (reveal) to those allowed, with the reason kept in the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Forbidden, Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_free
from app.privacy import patterns as configured
from app.privacy import repository
from app.privacy.detectors import CustomPattern, Span, detect, detect_html, mask
from app.privacy.models import FindingField, MessageFinding, SensitivePattern
from app.privacy.schemas import (
    FindingRead,
    PatternCreate,
    PatternRead,
    PatternUpdate,
    RevealedFinding,
    RevealRead,
    RevealRequest,
)
from app.tickets import service as tickets
from app.tickets.models import Message

ENTITY = "privacy_pattern"
_BY_NAME = SortKey(SensitivePattern.name, SensitivePattern.id, descending=False)

Texts = Mapping[FindingField, str | None]


def _detect_all(
    message_id: int, texts: Texts, patterns: Sequence[CustomPattern]
) -> list[tuple[FindingField, Span]]:
    found: list[tuple[FindingField, Span]] = []
    for field, text in texts.items():
        if text:
            detector = detect_html if field is FindingField.body_html else detect
            where = f"message {message_id} {field.value}"
            found.extend((field, span) for span in detector(text, patterns, where=where))
    return found


def message_texts(message: Message) -> dict[FindingField, str | None]:
    return {field: getattr(message, field.value) for field in FindingField}


async def scan_message(session: AsyncSession, message: Message) -> None:
    """Find the sensitive values in a message just saved and keep where they are."""
    patterns = await configured.enabled(session)
    # Bodies can be megabytes: the regexes run beside the event loop, not on it.
    found = await asyncio.to_thread(_detect_all, message.id, message_texts(message), patterns)
    session.add_all(
        MessageFinding(
            message_id=message.id, field=field, kind=span.kind, start=span.start, end=span.end
        )
        for field, span in found
    )
    await session.flush()


async def findings_by_message(
    session: AsyncSession, message_ids: Sequence[int]
) -> dict[int, list[MessageFinding]]:
    found: dict[int, list[MessageFinding]] = {}
    for finding in await repository.findings_of(session, message_ids):
        found.setdefault(finding.message_id, []).append(finding)
    return found


def masked(
    texts: Texts, findings: Sequence[MessageFinding]
) -> tuple[dict[FindingField, str | None], list[FindingRead]]:
    """The texts with their findings masked, and the findings as the API lists them."""
    spans: dict[FindingField, list[Span]] = {}
    for finding in findings:
        spans.setdefault(finding.field, []).append(Span(finding.kind, finding.start, finding.end))
    result = {
        field: mask(text, spans.get(field, []), html=field is FindingField.body_html)
        if text
        else text
        for field, text in texts.items()
    }
    reads = [
        FindingRead(
            id=f.id,
            field=f.field,
            kind=f.kind,
            start=f.start,
            end=f.end,
            masked=(result[f.field] or "")[f.start : f.end],
        )
        for f in findings
    ]
    return result, reads


async def reveal(
    session: AsyncSession,
    actor: Principal,
    message_id: int,
    request: RevealRequest,
    *,
    agents_may_reveal: bool,
) -> RevealRead:
    """The original values of a message's findings, audited with the reason given."""
    if actor.is_external:
        raise Forbidden("External partners cannot reveal masked values.")
    actor.require(AgentRole.agent if agents_may_reveal else AgentRole.supervisor)
    message = await tickets.visible_message(session, actor, message_id)
    findings = await repository.findings_of(session, [message.id])
    if request.finding_ids is not None:
        unknown = set(request.finding_ids) - {f.id for f in findings}
        if unknown:
            raise Invalid(
                f"Message {message_id} has no finding(s) {', '.join(map(str, sorted(unknown)))}.",
                field="body.finding_ids",
            )
        findings = [f for f in findings if f.id in set(request.finding_ids)]
    texts = message_texts(message)
    revealed = [
        RevealedFinding(
            id=f.id, field=f.field, kind=f.kind, value=(texts[f.field] or "")[f.start : f.end]
        )
        for f in findings
    ]
    await audit.record(
        session,
        actor,
        "message.revealed",
        "message",
        message.id,
        after={
            "ticket_id": message.ticket_id,
            "findings": [{"id": f.id, "field": f.field.value, "kind": f.kind} for f in findings],
            "reason": request.reason,
        },
    )
    return RevealRead(message_id=message.id, findings=revealed)


# --- Configured patterns --------------------------------------------------------------------


def _snapshot(pattern: SensitivePattern) -> audit.Snapshot:
    return audit.snapshot(PatternRead.model_validate(pattern))


async def list_patterns(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[SensitivePattern], str | None]:
    actor.require(AgentRole.admin)
    rows = await repository.list_patterns(session, _BY_NAME, cursor, limit)
    return next_cursor(rows, _BY_NAME, limit)


async def get_pattern(session: AsyncSession, actor: Principal, pattern_id: int) -> SensitivePattern:
    actor.require(AgentRole.admin)
    pattern = await repository.get_pattern(session, pattern_id)
    if pattern is None:
        raise NotFound(f"Pattern {pattern_id} does not exist.")
    return pattern


async def create_pattern(
    session: AsyncSession, actor: Principal, data: PatternCreate
) -> SensitivePattern:
    """A pattern applies to messages saved from now on; earlier ones keep their findings."""
    actor.require(AgentRole.admin)
    owner = await repository.pattern_id_by_name(session, data.name)
    check_free(f"The name {data.name!r}", owner_id=owner, entity=ENTITY, entity_id=None)
    pattern = SensitivePattern(**data.model_dump())
    session.add(pattern)
    await session.flush()
    await audit.record(
        session, actor, "privacy_pattern.created", ENTITY, pattern.id, after=_snapshot(pattern)
    )
    return pattern


async def update_pattern(
    session: AsyncSession,
    actor: Principal,
    pattern_id: int,
    changes: PatternUpdate,
    expected_version: int | None,
) -> SensitivePattern:
    pattern = await get_pattern(session, actor, pattern_id)
    check_version(pattern.version, expected_version)
    before = _snapshot(pattern)
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    for field, value in values.items():
        setattr(pattern, field, value)
    await session.flush()
    await audit.record(
        session,
        actor,
        "privacy_pattern.updated",
        ENTITY,
        pattern.id,
        before=before,
        after=_snapshot(pattern),
    )
    return pattern


async def delete_pattern(
    session: AsyncSession, actor: Principal, pattern_id: int, expected_version: int | None
) -> None:
    """Stop looking for the pattern; values it found stay masked."""
    pattern = await get_pattern(session, actor, pattern_id)
    check_version(pattern.version, expected_version)
    before = _snapshot(pattern)
    await session.delete(pattern)
    await session.flush()
    await audit.record(session, actor, "privacy_pattern.deleted", ENTITY, pattern_id, before=before)
