"""Per-caller request limits, counted in PostgreSQL so every API process shares them.

Each request to ``/api/v1`` adds one to its caller's counter for the current minute (a fixed
window, taken from the database clock) with a single UPSERT, in a short transaction of its own:
the count stays even when the request itself fails and rolls back. The caller is the bearer
token (by its SHA-256, as stored) when it is a token that authenticates, otherwise the client
address: the same statement looks the token up, so made-up tokens cannot each get a counter of
their own. Login and token calls (``/api/v1/auth/...``) count per client address against a
stricter limit, whatever token they carry. The outcome is kept on the request state; the
request middleware turns it into the ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` headers of the answer (and ``Retry-After`` on a 429), so error answers
carry them too. Windows no longer counted in are deleted by the scheduler's
:func:`run_rate_limit_purge_pass`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import (
    ColumnElement,
    DateTime,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.api.deps import AppSettings, get_sessionmaker
from app.api.models import RateLimitWindow
from app.auth.models import ApiToken
from app.core.errors import DomainError
from app.core.security import hash_api_token
from app.db.batches import delete_in_batches

AUTH_PATH_PREFIX = "/api/v1/auth/"
STATE_KEY = "rate_limit"


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"
    code = "rate_limited"


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    count: int
    reset_seconds: int

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - self.count, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if self.exceeded:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


def rate_limit_clock() -> datetime | None:
    """The moment requests count at; None: the database's clock, which every process shares.
    Tests override this dependency to count in a window of their choosing."""
    return None


def _moment(now: datetime | None) -> ColumnElement[datetime]:
    return func.now() if now is None else literal(now, DateTime(timezone=True))


async def count_request(
    session: AsyncSession, bucket: str | ColumnElement[str], now: datetime | None
) -> tuple[int, int]:
    """Add one to ``bucket``'s counter for the minute of ``now`` (the database's clock when
    None); the new count and the seconds until the window ends."""
    moment = _moment(now)
    window = func.date_trunc("minute", moment)
    upsert = insert(RateLimitWindow).values(bucket=bucket, window_start=window, count=1)
    statement = upsert.on_conflict_do_update(
        index_elements=[RateLimitWindow.bucket, RateLimitWindow.window_start],
        set_={"count": RateLimitWindow.count + 1},
    ).returning(
        RateLimitWindow.count,
        func.extract("epoch", RateLimitWindow.window_start + literal_column("interval '1 minute'"))
        - func.extract("epoch", moment),
    )
    count, seconds_left = (await session.execute(statement)).one()
    return count, max(math.ceil(seconds_left), 1)


def _token_or_address(token: str, address: str, now: datetime | None) -> ColumnElement[str]:
    """The token's counter if it authenticates (as ``authenticate`` checks it), else the
    address's: evaluated inside the counting statement."""
    token_hash = hash_api_token(token)
    valid = exists().where(
        ApiToken.token_hash == token_hash,
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > _moment(now)),
        Agent.id == ApiToken.agent_id,
        Agent.active,
    )
    return case((valid, f"token:{token_hash}"), else_=f"address:{address}")


def _bucket(request: Request, now: datetime | None) -> tuple[str | ColumnElement[str], bool]:
    """The caller's counter name, and whether it is a login or token call."""
    address = request.client.host if request.client else "unknown"
    if request.url.path.startswith(AUTH_PATH_PREFIX):
        return f"auth:{address}", True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return _token_or_address(token.strip(), address, now), False
    return f"address:{address}", False


async def enforce_rate_limit(
    request: Request,
    settings: AppSettings,
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
    now: Annotated[datetime | None, Depends(rate_limit_clock)],
) -> None:
    bucket, is_auth = _bucket(request, now)
    limit = settings.auth_rate_limit_per_minute if is_auth else settings.rate_limit_per_minute
    if limit == 0:
        return
    async with maker() as session:
        count, reset_seconds = await count_request(session, bucket, now)
        await session.commit()
    state = RateLimitState(limit=limit, count=count, reset_seconds=reset_seconds)
    setattr(request.state, STATE_KEY, state)
    if state.exceeded:
        raise TooManyRequests(
            f"More than {limit} requests a minute; try again in {reset_seconds} seconds."
        )


async def run_rate_limit_purge_pass(
    maker: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = 5000
) -> int:
    """Delete the windows that ended more than a minute before ``now`` (a minute to spare for
    clocks apart), of callers seen again or not; returns how many. Each batch is claimed
    (``FOR UPDATE SKIP LOCKED``) in a transaction of its own."""
    return await delete_in_batches(
        maker,
        (RateLimitWindow.bucket, RateLimitWindow.window_start),
        RateLimitWindow.window_start < now - timedelta(minutes=2),
        batch=batch,
    )
