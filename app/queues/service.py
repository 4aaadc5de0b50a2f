from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_addresses_free, check_free
from app.mailboxes import service as mailboxes
from app.queues import repository
from app.queues.models import CustomerFields, Queue
from app.queues.schemas import QueueCreate, QueueRead, QueueUpdate
from app.sla import service as sla
from app.teams import service as teams
from app.tickets import service as tickets

ENTITY = "queue"
_BY_NAME = SortKey(Queue.name, Queue.id, descending=False)


def _snapshot(queue: Queue) -> audit.Snapshot:
    return audit.snapshot(QueueRead.model_validate(queue))


async def find_queue(session: AsyncSession, queue_id: int) -> Queue | None:
    """The queue, without a permission check: for ingestion, routing and reference checks."""
    return await repository.get(session, queue_id)


async def get_queue(session: AsyncSession, actor: Principal, queue_id: int) -> Queue:
    """The queue, if the actor may see it; a hidden queue is reported as missing, so an
    external agent learns nothing about queues it has no grant for."""
    queue = await repository.get(session, queue_id)
    if queue is None or not actor.can_see_queue(queue.id):
        raise NotFound(f"Queue {queue_id} does not exist.")
    return queue


async def list_queues(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[Queue], str | None]:
    # The query form of `can_see_queue`: external agents see their granted queues only.
    only_ids = actor.granted_queue_ids if actor.is_external else None
    rows = await repository.list_queues(
        session, only_ids=only_ids, key=_BY_NAME, cursor=cursor, limit=limit
    )
    return next_cursor(rows, _BY_NAME, limit)


async def _check_name_free(session: AsyncSession, name: str, queue_id: int | None) -> None:
    owner_id = await repository.id_by_name(session, name)
    check_free(f"The name {name!r}", owner_id=owner_id, entity=ENTITY, entity_id=queue_id)


async def _check_addresses_free(
    session: AsyncSession, addresses: list[str], queue_id: int | None
) -> None:
    if not addresses:
        return
    await repository.lock_addresses(session, addresses)
    owners = await repository.find_address_owners(session, addresses, exclude_id=queue_id)
    check_addresses_free(
        addresses,
        holder=(owners[0].id, owners[0].name, owners[0].inbound_addresses) if owners else None,
        entity=ENTITY,
    )


async def _check_references(session: AsyncSession, values: dict[str, Any]) -> None:
    """The team, mailbox, acknowledgement template and SLA policy named must exist."""
    team_id = values.get("team_id")
    if team_id is not None and await teams.find_team(session, team_id) is None:
        raise Invalid(f"Team {team_id} does not exist.", field="body.team_id")
    mailbox_id = values.get("mailbox_id")
    if mailbox_id is not None and await mailboxes.get(session, mailbox_id) is None:
        raise Invalid(f"Mailbox {mailbox_id} does not exist.", field="body.mailbox_id")
    await mailboxes.check_acknowledgement_template(
        session, values.get("acknowledgement_template_id")
    )
    policy_id = values.get("sla_policy_id")
    if policy_id is not None and await sla.find_policy(session, policy_id) is None:
        raise Invalid(f"SLA policy {policy_id} does not exist.", field="body.sla_policy_id")


async def create_queue(session: AsyncSession, actor: Principal, data: QueueCreate) -> Queue:
    actor.require(AgentRole.admin)
    await _check_name_free(session, data.name, None)
    await _check_addresses_free(session, data.inbound_addresses, None)
    values = data.model_dump()
    await _check_references(session, values)
    queue = Queue(**values)
    session.add(queue)
    await session.flush()
    await audit.record(session, actor, "queue.created", ENTITY, queue.id, after=_snapshot(queue))
    return queue


async def update_queue(
    session: AsyncSession,
    actor: Principal,
    queue_id: int,
    changes: QueueUpdate,
    expected_version: int | None,
) -> Queue:
    actor.require(AgentRole.admin)
    queue = await get_queue(session, actor, queue_id)
    check_version(queue.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    if "name" in values:
        await _check_name_free(session, values["name"], queue.id)
    if "inbound_addresses" in values:
        await _check_addresses_free(session, values["inbound_addresses"], queue.id)
    await _check_references(session, values)
    before = _snapshot(queue)
    for field, value in values.items():
        setattr(queue, field, value)
    await session.flush()
    await audit.record(
        session, actor, "queue.updated", ENTITY, queue.id, before=before, after=_snapshot(queue)
    )
    return queue


async def delete_queue(
    session: AsyncSession, actor: Principal, queue_id: int, expected_version: int | None
) -> None:
    """Delete the queue; its tickets stay, without a queue (each as a change of the ticket,
    which the foreign key's SET NULL would make unseen), and its grants go with it."""
    actor.require(AgentRole.admin)
    queue = await get_queue(session, actor, queue_id)
    check_version(queue.version, expected_version)
    ticket_ids = await tickets.release_queue(session, queue.id)
    before = {**_snapshot(queue), "ticket_ids": sorted(ticket_ids)}
    await session.delete(queue)
    await session.flush()
    await audit.record(session, actor, "queue.deleted", ENTITY, queue_id, before=before)


async def release_team(session: AsyncSession, team_id: int) -> list[int]:
    """Detach the queues of a team that is being deleted, each as a change of the queue (its
    version moves); returns their ids, for the caller's audit event."""
    return await repository.release_team(session, team_id)


async def list_grants(session: AsyncSession, actor: Principal, queue_id: int) -> list[int]:
    """Ids of the external agents granted the queue (internal staff only: a partner should
    not learn who else works the queue)."""
    actor.require(AgentRole.agent)
    queue = await get_queue(session, actor, queue_id)
    return await repository.list_grants(session, queue.id)


async def add_grant(
    session: AsyncSession,
    actor: Principal,
    queue_id: int,
    agent_id: int,
    customer_fields: CustomerFields = CustomerFields.none,
) -> list[int]:
    """Let an external agent work the queue, seeing so much of its customers (idempotent);
    returns the granted agent ids."""
    actor.require(AgentRole.admin)
    queue = await get_queue(session, actor, queue_id)
    agent = await agents.get_agent(session, actor, agent_id)
    if agent.role is not AgentRole.external:
        raise Invalid(
            f"Agent {agent_id} has the {agent.role.value} role, which sees every queue; "
            "grants are only for external agents.",
            field="path.agent_id",
        )
    if await repository.add_grant(session, queue.id, agent.id, customer_fields):
        await audit.record(
            session,
            actor,
            "queue.grant_added",
            ENTITY,
            queue.id,
            after={"agent_id": agent.id, "customer_fields": customer_fields.value},
        )
    return await repository.list_grants(session, queue.id)


async def remove_grant(
    session: AsyncSession, actor: Principal, queue_id: int, agent_id: int
) -> None:
    actor.require(AgentRole.admin)
    queue = await get_queue(session, actor, queue_id)
    if not await repository.remove_grant(session, queue.id, agent_id):
        raise NotFound(f"Agent {agent_id} has no grant for queue {queue_id}.")
    await audit.record(
        session, actor, "queue.grant_removed", ENTITY, queue.id, before={"agent_id": agent_id}
    )


async def queue_for_addresses(session: AsyncSession, addresses: Sequence[str]) -> Queue | None:
    """The queue serving the first of these addresses that any queue serves (mail routing)."""
    wanted = [address.lower() for address in addresses]
    if not wanted:
        return None
    owners = await repository.find_address_owners(session, wanted, exclude_id=None)
    for address in wanted:
        for queue in owners:
            if address in queue.inbound_addresses:
                return queue
    return None


async def customer_fields(session: AsyncSession, actor: Principal) -> dict[int, CustomerFields]:
    """What an external agent may see of the customers in each queue granted to them."""
    if actor.agent_id is None or not actor.is_external:
        return {}
    return await repository.customer_fields(session, actor.agent_id)


async def granted_queue_ids(session: AsyncSession, agent_id: int) -> frozenset[int]:
    """The queues an external agent was granted (no permission check: for sign-in)."""
    return await repository.granted_queue_ids(session, agent_id)
