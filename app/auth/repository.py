from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import ApiToken


async def find_token_with_agent(
    session: AsyncSession, token_hash: str
) -> tuple[ApiToken, Agent] | None:
    row = (
        await session.execute(
            select(ApiToken, Agent)
            .join(Agent, Agent.id == ApiToken.agent_id)
            .where(ApiToken.token_hash == token_hash)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def touch_token(session: AsyncSession, token_id: int, when: datetime) -> None:
    """Note the token's use, unless a concurrent request is noting it: requests sharing a
    token must not wait for each other over a bookkeeping field."""
    unlocked = select(ApiToken.id).where(ApiToken.id == token_id).with_for_update(skip_locked=True)
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id.in_(unlocked.scalar_subquery()))
        .values(last_used_at=when)
    )


async def revoke_tokens(
    session: AsyncSession, agent_id: int, name: str, when: datetime, *, keep: int | None
) -> None:
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.agent_id == agent_id,
            ApiToken.name == name,
            ApiToken.revoked_at.is_(None),
            ApiToken.id != (keep or 0),
        )
        .values(revoked_at=when)
    )


async def list_tokens(session: AsyncSession, agent_id: int | None) -> list[ApiToken]:
    statement = select(ApiToken).order_by(ApiToken.id)
    if agent_id is not None:
        statement = statement.where(ApiToken.agent_id == agent_id)
    return list(await session.scalars(statement))


async def get_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)
