from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import Agent, AgentRole
from app.audit import service as audit
from app.auth import repository
from app.auth.models import ApiToken
from app.auth.schemas import Principal, Scope, TokenCreate, TokenCreated, TokenRead
from app.core.clock import utcnow
from app.core.errors import Forbidden, Invalid, NotFound, Unauthorized
from app.core.security import hash_api_token, new_api_token, token_display_prefix, verify_password
from app.queues import service as queues

ENTITY = "api_token"
_BAD_TOKEN = "The token is unknown, expired or revoked: log in again or create a new token."  # noqa: S105


async def authenticate(
    session: AsyncSession,
    token: str,
    *,
    source_ip: str | None,
    request_id: str | None,
    touch_interval: timedelta,
) -> Principal:
    found = await repository.find_token_with_agent(session, hash_api_token(token))
    now = utcnow()
    if found is None:
        raise Unauthorized(_BAD_TOKEN)
    api_token, agent = found
    if api_token.revoked_at is not None or (api_token.expires_at and api_token.expires_at <= now):
        raise Unauthorized(_BAD_TOKEN)
    if not agent.active:
        raise Unauthorized("This agent is deactivated; ask an admin to reactivate the account.")
    if api_token.last_used_at is None or now - api_token.last_used_at > touch_interval:
        await repository.touch_token(session, api_token.id, now)
    granted = (
        await queues.granted_queue_ids(session, agent.id)
        if agent.role is AgentRole.external
        else frozenset()
    )
    return Principal(
        agent_id=agent.id,
        label=agent.email,
        role=agent.role,
        scopes=frozenset(Scope(s) for s in api_token.scopes),
        token_id=api_token.id,
        granted_queue_ids=granted,
        source_ip=source_ip,
        request_id=request_id,
    )


LOGIN_TOKEN_NAME = "login"  # noqa: S105 - the name of a token, not one


async def end_login_sessions(session: AsyncSession, actor: Principal, agent_id: int) -> None:
    """Revoke the agent's login tokens but the one in use (after a password change, so a
    stolen session ends)."""
    await repository.revoke_tokens(
        session, agent_id, LOGIN_TOKEN_NAME, utcnow(), keep=actor.token_id
    )
    await audit.record(session, actor, "api_token.login_sessions_ended", "agent", agent_id)


async def _issue(
    session: AsyncSession,
    actor: Principal,
    agent: Agent,
    name: str,
    scopes: list[Scope],
    lifetime: timedelta,
) -> TokenCreated:
    token = new_api_token()
    api_token = ApiToken(
        agent_id=agent.id,
        name=name,
        prefix=token_display_prefix(token),
        token_hash=hash_api_token(token),
        scopes=sorted({s.value for s in scopes}),
        expires_at=utcnow() + lifetime,
    )
    session.add(api_token)
    await session.flush()
    read = TokenRead.model_validate(api_token)
    await audit.record(
        session, actor, "api_token.created", ENTITY, api_token.id, after=audit.snapshot(read)
    )
    return TokenCreated(**read.model_dump(), token=token)


async def login(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    lifetime: timedelta,
    source_ip: str | None,
    request_id: str | None,
) -> TokenCreated:
    agent = await agents.find_by_email(session, email)
    valid = await asyncio.to_thread(
        verify_password, password, agent.password_hash if agent else None
    )
    if agent is None or not valid or not agent.active:
        raise Unauthorized("Wrong email or password.")
    actor = Principal(
        agent_id=agent.id,
        label=agent.email,
        role=agent.role,
        source_ip=source_ip,
        request_id=request_id,
    )
    return await _issue(
        session, actor, agent, LOGIN_TOKEN_NAME, [Scope.read, Scope.write], lifetime
    )


async def create_token(
    session: AsyncSession, actor: Principal, data: TokenCreate, *, default_lifetime: timedelta
) -> TokenCreated:
    owner_id = data.agent_id if data.agent_id is not None else actor.agent_id
    if owner_id is None:
        raise Invalid("Say which agent the token is for (agent_id).", field="body.agent_id")
    if owner_id != actor.agent_id:
        actor.require(AgentRole.admin)
    if not set(data.scopes) <= actor.scopes:
        raise Forbidden("A token cannot have scopes that the token creating it lacks.")
    owner = await agents.get_agent(session, actor, owner_id)
    lifetime = timedelta(days=data.expires_in_days) if data.expires_in_days else default_lifetime
    return await _issue(session, actor, owner, data.name, data.scopes, lifetime)


async def list_tokens(
    session: AsyncSession, actor: Principal, *, all_agents: bool
) -> list[ApiToken]:
    if all_agents:
        actor.require(AgentRole.admin)
        return await repository.list_tokens(session, None)
    return await repository.list_tokens(session, actor.agent_id)


async def revoke_token(session: AsyncSession, actor: Principal, token_id: int) -> ApiToken:
    api_token = await repository.get_token(session, token_id)
    if api_token is None or (
        api_token.agent_id != actor.agent_id and not actor.is_at_least(AgentRole.admin)
    ):
        raise NotFound(f"Token {token_id} does not exist.")
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        await session.flush()
        await audit.record(session, actor, "api_token.revoked", ENTITY, api_token.id)
    return api_token
