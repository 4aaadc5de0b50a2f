"""Managing SLA policies, and reading a ticket's SLA history. Separate from ``service.py``
because checking escalation actions needs the routing service, which imports that one."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.clock import utcnow
from app.core.errors import Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_free
from app.routing import service as routing
from app.sla import repository
from app.sla import service as sla
from app.sla.models import SlaPolicy
from app.sla.schemas import (
    EscalationRead,
    EscalationStep,
    SlaPolicyCreate,
    SlaPolicyRead,
    SlaPolicyUpdate,
    SlaTargetRead,
    TicketSlaRead,
)
from app.tickets import service as tickets

ENTITY = "sla_policy"
_BY_NAME = SortKey(SlaPolicy.name, SlaPolicy.id, descending=False)
_RECOUNTED = frozenset({"targets", "calendar_id", "at_risk_percent"})
"""The fields whose edit moves the due and at-risk times of the policy's running targets."""


def _snapshot(policy: SlaPolicy) -> audit.Snapshot:
    return audit.snapshot(SlaPolicyRead.model_validate(policy))


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


async def _check_references(session: AsyncSession, values: dict[str, Any]) -> None:
    """The calendar, and every queue, agent, team and template an escalation step names,
    must exist."""
    calendar_id = values.get("calendar_id")
    if calendar_id is not None and not await repository.calendar_exists(session, calendar_id):
        raise Invalid(f"Calendar {calendar_id} does not exist.", field="body.calendar_id")
    for index, step in enumerate(values.get("escalations") or []):
        await routing.check_action_references(
            session,
            EscalationStep.model_validate(step).actions,
            owner=f"Escalation step {index}",
            loc=f"body.escalations.{index}.actions",
        )


async def create_policy(
    session: AsyncSession, actor: Principal, data: SlaPolicyCreate
) -> SlaPolicy:
    actor.require(AgentRole.admin)
    await _check_name_free(session, data.name, None)
    values = data.model_dump(mode="json")
    await _check_references(session, values)
    policy = SlaPolicy(**values)
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
    values = changes.model_dump(mode="json", exclude_unset=True)
    if "name" in values:
        await _check_name_free(session, values["name"], policy.id)
    await _check_references(session, values)
    before = _snapshot(policy)
    for field, value in values.items():
        setattr(policy, field, value)
    await session.flush()
    if values.keys() & _RECOUNTED:
        # Recounting schedules the next look too, so it covers an escalation edit as well.
        await sla.recount_policy(session, policy, utcnow())
    elif "escalations" in values:
        await sla.reschedule_policy(session, policy)
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
    sets their ``sla_policy_id`` to null), their target history stays. The audit event lists
    those tickets."""
    actor.require(AgentRole.admin)
    policy = await get_policy(session, actor, policy_id)
    check_version(policy.version, expected_version)
    ticket_ids = await repository.ticket_ids_held_to(session, policy.id)
    before = {**_snapshot(policy), "ticket_ids": ticket_ids}
    await session.delete(policy)
    await session.flush()
    await audit.record(session, actor, "sla_policy.deleted", ENTITY, policy_id, before=before)


async def ticket_history(session: AsyncSession, actor: Principal, ticket_id: int) -> TicketSlaRead:
    """Every target cycle of the ticket with the escalation steps fired for it."""
    actor.require(AgentRole.agent)
    ticket = await tickets.get_ticket(session, actor, ticket_id)
    policy = await sla.effective_policy(session, ticket)
    targets, fired = await repository.history(session, ticket.id)
    by_target: dict[int, list[EscalationRead]] = {t.id: [] for t in targets}
    for escalation in fired:
        by_target[escalation.target_id].append(EscalationRead.model_validate(escalation))
    return TicketSlaRead(
        ticket_id=ticket.id,
        policy_id=policy.id if policy is not None else None,
        targets=[
            SlaTargetRead.model_validate(t).model_copy(update={"escalations": by_target[t.id]})
            for t in targets
        ],
    )
