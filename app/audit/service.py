"""Audit events, written in the same transaction as the change they describe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import repository
from app.audit.models import AuditEvent
from app.audit.schemas import AuditFilters
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
