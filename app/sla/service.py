from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_free
from app.sla import repository
from app.sla.models import SlaPolicy
from app.sla.schemas import SlaPolicyCreate, SlaPolicyRead, SlaPolicyUpdate

ENTITY = "sla_policy"
_BY_NAME = SortKey(SlaPolicy.name, SlaPolicy.id, descending=False)


def _snapshot(policy: SlaPolicy) -> audit.Snapshot:
    return audit.snapshot(SlaPolicyRead.model_validate(policy))


async def find_policy(session: AsyncSession, policy_id: int) -> SlaPolicy | None:
    """The policy, without a permission check: for other domains validating a reference
    (a routing rule's ``set_sla_policy`` action)."""
    return await repository.get(session, policy_id)


async def get_policy(session: AsyncSession, actor: Principal, policy_id: int) -> SlaPolicy:
    actor.require(AgentRole.agent)
    policy = await repository.get(session, policy_id)
    if policy is None:
        raise NotFound(f"SLA policy {policy_id} does not exist.")
    return policy


async def list_policies(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[SlaPolicy], str | None]:
    actor.require(AgentRole.agent)
    rows = await repository.list_policies(session, key=_BY_NAME, cursor=cursor, limit=limit)
    return next_cursor(rows, _BY_NAME, limit)


async def _check_name_free(session: AsyncSession, name: str, policy_id: int | None) -> None:
    owner_id = await repository.id_by_name(session, name)
    check_free(f"The name {name!r}", owner_id=owner_id, entity=ENTITY, entity_id=policy_id)


async def create_policy(
    session: AsyncSession, actor: Principal, data: SlaPolicyCreate
) -> SlaPolicy:
    actor.require(AgentRole.admin)
    await _check_name_free(session, data.name, None)
    policy = SlaPolicy(name=data.name, description=data.description)
    session.add(policy)
    await session.flush()
    await audit.record(
        session, actor, "sla_policy.created", ENTITY, policy.id, after=_snapshot(policy)
    )
    return policy


async def update_policy(
    session: AsyncSession,
    actor: Principal,
    policy_id: int,
    changes: SlaPolicyUpdate,
    expected_version: int | None,
) -> SlaPolicy:
    actor.require(AgentRole.admin)
    policy = await get_policy(session, actor, policy_id)
    check_version(policy.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    if "name" in values:
        await _check_name_free(session, values["name"], policy.id)
    before = _snapshot(policy)
    for field, value in values.items():
        setattr(policy, field, value)
    await session.flush()
    await audit.record(
        session,
        actor,
        "sla_policy.updated",
        ENTITY,
        policy.id,
        before=before,
        after=_snapshot(policy),
    )
    return policy


async def delete_policy(
    session: AsyncSession, actor: Principal, policy_id: int, expected_version: int | None
) -> None:
    """Delete the policy; the tickets held to it keep existing without one (the foreign key
    sets their ``sla_policy_id`` to null). The event lists those tickets."""
    actor.require(AgentRole.admin)
    policy = await get_policy(session, actor, policy_id)
    check_version(policy.version, expected_version)
    ticket_ids = await repository.ticket_ids_held_to(session, policy.id)
    before = {**_snapshot(policy), "ticket_ids": ticket_ids}
    await session.delete(policy)
    await session.flush()
    await audit.record(session, actor, "sla_policy.deleted", ENTITY, policy_id, before=before)
