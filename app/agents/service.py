from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.models import Agent, AgentRole
from app.agents.schemas import AgentCreate, AgentRead, AgentSelfUpdate, AgentUpdate
from app.audit import service as audit
from app.auth import service as auth
from app.auth.passwords import check_password
from app.auth.schemas import Principal
from app.core.errors import Conflict, Forbidden, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.security import hash_password

ENTITY = "agent"


def _snapshot(agent: Agent) -> audit.Snapshot:
    return audit.snapshot(AgentRead.model_validate(agent))


async def get_agent(session: AsyncSession, actor: Principal, agent_id: int) -> Agent:
    if agent_id != actor.agent_id:
        actor.require(AgentRole.agent)
    agent = await repository.get(session, agent_id)
    if agent is None:
        raise NotFound(f"Agent {agent_id} does not exist.")
    return agent


async def find_by_id(session: AsyncSession, agent_id: int) -> Agent | None:
    return await repository.get(session, agent_id)


async def find_many(session: AsyncSession, agent_ids: Collection[int]) -> list[Agent]:
    """The agents among these ids, without a permission check: for side-loading."""
    return await repository.get_many(session, agent_ids)


async def find_by_email(session: AsyncSession, email: str) -> Agent | None:
    return await repository.get_by_email(session, email)


async def list_agents(
    session: AsyncSession,
    actor: Principal,
    *,
    role: AgentRole | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Agent], str | None]:
    actor.require(AgentRole.agent)
    key = SortKey(Agent.id, Agent.id, descending=False)
    rows = await repository.list_agents(
        session, role=role, active=active, key=key, cursor=cursor, limit=limit
    )
    return next_cursor(rows, key, limit)


async def create_agent(
    session: AsyncSession, actor: Principal, data: AgentCreate, *, password_min_length: int
) -> Agent:
    actor.require(AgentRole.admin)
    if await repository.get_by_email(session, data.email) is not None:
        raise Conflict(f"An agent with the email {data.email} exists already.")
    if data.password:
        check_password(data.password, email=data.email, min_length=password_min_length)
    agent = Agent(
        email=data.email,
        name=data.name,
        role=data.role,
        skills=data.skills,
        capacity=data.capacity,
        languages=data.languages,
        active=data.active,
        available=True,
        password_hash=await asyncio.to_thread(hash_password, data.password)
        if data.password
        else None,
    )
    session.add(agent)
    await session.flush()
    await audit.record(session, actor, "agent.created", ENTITY, agent.id, after=_snapshot(agent))
    return agent


async def _apply(
    session: AsyncSession,
    actor: Principal,
    agent: Agent,
    changes: AgentUpdate | AgentSelfUpdate,
    expected_version: int | None,
    *,
    password_min_length: int,
    now: datetime,
) -> Agent:
    check_version(agent.version, expected_version)
    before = _snapshot(agent)
    # The proof of a self-service password change is checked before, never stored.
    values = changes.model_dump(exclude_unset=True, exclude={"current_password", "code"})
    password = values.pop("password", None)
    if password:
        check_password(password, email=agent.email, min_length=password_min_length)
    newly_requires_2fa = values.get("require_2fa") is True and not agent.require_2fa
    for field, value in values.items():
        setattr(agent, field, value)
    if password:
        agent.password_hash = await asyncio.to_thread(hash_password, password)
    await session.flush()
    await audit.record(
        session, actor, "agent.updated", ENTITY, agent.id, before=before, after=_snapshot(agent)
    )
    if password:
        await audit.record(session, actor, "agent.password_changed", ENTITY, agent.id)
        await auth.end_login_sessions(session, actor, agent.id)
    if newly_requires_2fa:
        await auth.two_factor_now_required(session, actor, agent.id, now)
    return agent


async def update_agent(
    session: AsyncSession,
    actor: Principal,
    agent_id: int,
    changes: AgentUpdate,
    expected_version: int | None,
    *,
    password_min_length: int,
    now: datetime,
) -> Agent:
    """An admin's change; setting another agent's password needs no proof (an admin's reset,
    audited), but an admin's own password takes the proof at ``update_self`` like anyone's."""
    actor.require(AgentRole.admin)
    if changes.password is not None and agent_id == actor.agent_id:
        raise Forbidden("Change your own password at PATCH /agents/me, with your current password.")
    agent = await get_agent(session, actor, agent_id)
    demoted = changes.role not in (None, AgentRole.admin) or changes.active is False
    if agent.role is AgentRole.admin and agent.active and demoted:
        await _keep_an_admin(session, agent.id)
    return await _apply(
        session,
        actor,
        agent,
        changes,
        expected_version,
        password_min_length=password_min_length,
        now=now,
    )


async def _keep_an_admin(session: AsyncSession, leaving_id: int) -> None:
    if await repository.count_active_admins(session, excluding=leaving_id) == 0:
        raise Conflict(
            "This is the last active admin: make another agent admin first, so that someone "
            "can still manage agents and settings."
        )


async def get_self(session: AsyncSession, actor: Principal) -> Agent:
    if actor.agent_id is None:
        raise NotFound("The system has no agent profile.")
    return await get_agent(session, actor, actor.agent_id)


async def update_self(
    session: AsyncSession,
    actor: Principal,
    changes: AgentSelfUpdate,
    expected_version: int | None,
    *,
    password_min_length: int,
    secret_key: str,
    now: datetime,
) -> Agent:
    agent = await get_self(session, actor)
    if changes.password is not None:
        await auth.prove_own_credentials(
            session,
            agent,
            changes.current_password,
            changes.code,
            secret_key=secret_key,
            now=now,
        )
    return await _apply(
        session,
        actor,
        agent,
        changes,
        expected_version,
        password_min_length=password_min_length,
        now=now,
    )
