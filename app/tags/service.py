from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Invalid, NotFound
from app.tickets import service as tickets

ENTITY = "tag"


async def list_tags(
    session: AsyncSession, actor: Principal, *, prefix: str | None, limit: int
) -> Sequence[Row[tuple[str, int]]]:
    """Tags in use with their ticket counts. Not for external agents: the counts span every
    queue, including those they have no grant for."""
    actor.require(AgentRole.agent)
    return await tickets.tag_counts(session, prefix=prefix, limit=limit)


def _unused(name: str) -> NotFound:
    return NotFound(f"No ticket has the tag {name!r}.")


async def delete_tag(session: AsyncSession, actor: Principal, name: str) -> int:
    """Remove the tag from every ticket; returns how many tickets had it."""
    actor.require(AgentRole.supervisor)
    changed = await tickets.remove_tag(session, name)
    if not changed:
        raise _unused(name)
    await audit.record(
        session, actor, "tag.deleted", ENTITY, name, after={"tickets_changed": changed}
    )
    return changed


async def rename_tag(session: AsyncSession, actor: Principal, name: str, new_name: str) -> int:
    """Rename the tag on every ticket; returns how many tickets had it."""
    actor.require(AgentRole.supervisor)
    if new_name == name:
        raise Invalid("The new name is the tag's current name.", field="body.new_name")
    changed = await tickets.rename_tag(session, name, new_name)
    if not changed:
        raise _unused(name)
    await audit.record(
        session,
        actor,
        "tag.renamed",
        ENTITY,
        name,
        after={"new_name": new_name, "tickets_changed": changed},
    )
    return changed
