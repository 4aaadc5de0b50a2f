from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import ApiToken, LoginLock, TwoFactor


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
    session: AsyncSession, agent_id: int, name: str | None, when: datetime, *, keep: int | None
) -> None:
    """Revoke the agent's tokens of that name (all of them without one) but ``keep``."""
    statement = update(ApiToken).where(
        ApiToken.agent_id == agent_id, ApiToken.revoked_at.is_(None), ApiToken.id != (keep or 0)
    )
    if name is not None:
        statement = statement.where(ApiToken.name == name)
    await session.execute(statement.values(revoked_at=when))


async def list_live_tokens(
    session: AsyncSession, agent_id: int, name: str, now: datetime
) -> list[ApiToken]:
    return list(
        await session.scalars(
            select(ApiToken)
            .where(
                ApiToken.agent_id == agent_id,
                ApiToken.name == name,
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
            .order_by(ApiToken.id)
        )
    )


async def get_two_factor(
    session: AsyncSession, agent_id: int, *, for_update: bool = False
) -> TwoFactor | None:
    # Locked while a code is checked, so two requests cannot both spend the same code.
    return await session.get(TwoFactor, agent_id, with_for_update=for_update)


async def delete_two_factor(session: AsyncSession, agent_id: int) -> bool:
    result = await session.execute(
        delete(TwoFactor).where(TwoFactor.agent_id == agent_id).returning(TwoFactor.agent_id)
    )
    return result.first() is not None


async def lock_login_row(session: AsyncSession, email: str, now: datetime) -> datetime | None:
    """Take the address's row (made if missing) for this transaction and give its lock end:
    parallel attempts on one address then check and count one after another, so a burst of
    guesses cannot all pass the check before any failure is counted."""
    new_row = insert(LoginLock).values(email=email, failures=0, updated_at=now)
    # A no-op update: ON CONFLICT DO UPDATE locks the existing row, DO NOTHING would not.
    statement = new_row.on_conflict_do_update(
        index_elements=[LoginLock.email], set_={"email": new_row.excluded.email}
    ).returning(LoginLock.locked_until)
    return (await session.execute(statement)).scalar_one()


async def add_login_failure(session: AsyncSession, email: str, now: datetime) -> int:
    """One more failure for ``email`` in a single UPSERT (replicas may count at once); the new
    count."""
    statement = (
        insert(LoginLock)
        .values(email=email, failures=1, updated_at=now)
        .on_conflict_do_update(
            index_elements=[LoginLock.email],
            set_={"failures": LoginLock.failures + 1, "updated_at": now},
        )
        .returning(LoginLock.failures)
    )
    return (await session.execute(statement)).scalar_one()


async def lock_login(session: AsyncSession, email: str, until: datetime, now: datetime) -> None:
    await session.execute(
        update(LoginLock)
        .where(LoginLock.email == email)
        .values(failures=0, locked_until=until, updated_at=now)
    )


async def clear_login_failures(session: AsyncSession, email: str) -> bool:
    result = await session.execute(
        delete(LoginLock).where(LoginLock.email == email).returning(LoginLock.email)
    )
    return result.first() is not None


async def list_tokens(session: AsyncSession, agent_id: int | None) -> list[ApiToken]:
    statement = select(ApiToken).order_by(ApiToken.id)
    if agent_id is not None:
        statement = statement.where(ApiToken.agent_id == agent_id)
    return list(await session.scalars(statement))


async def get_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)
