"""Per-caller request limits, counted in PostgreSQL so every API process shares them.

Each request to ``/api/v1`` adds one to its caller's counter for the current minute (a fixed
window, taken from the database clock) with a single UPSERT, in a short transaction of its own:
the count stays even when the request itself fails and rolls back. The caller is the bearer
token (by its SHA-256, as stored) or, without one, the client address. Login and token calls
(``/api/v1/auth/...``) count per client address against a stricter limit, whatever token they
carry. The outcome is kept on the request state; the request middleware turns it into the
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` headers of the answer (and
``Retry-After`` on a 429), so error answers carry them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import delete, func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import AppSettings, get_sessionmaker
from app.api.models import RateLimitWindow
from app.core.errors import DomainError
from app.core.security import hash_api_token

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


async def count_request(session: AsyncSession, bucket: str) -> tuple[int, int]:
    """Add one to ``bucket``'s counter for this minute (dropping its older windows in the same
    statement); the new count and the seconds until the window ends."""
    window = func.date_trunc("minute", func.now())
    purge = (
        delete(RateLimitWindow)
        .where(RateLimitWindow.bucket == bucket, RateLimitWindow.window_start < window)
        .cte("purge")
    )
    upsert = insert(RateLimitWindow).values(bucket=bucket, window_start=window, count=1)
    statement = (
        upsert.on_conflict_do_update(
            index_elements=[RateLimitWindow.bucket, RateLimitWindow.window_start],
            set_={"count": RateLimitWindow.count + 1},
        )
        .returning(
            RateLimitWindow.count,
            func.extract(
                "epoch", RateLimitWindow.window_start + literal_column("interval '1 minute'")
            )
            - func.extract("epoch", func.now()),
        )
        .add_cte(purge)
    )
    count, seconds_left = (await session.execute(statement)).one()
    return count, max(math.ceil(seconds_left), 1)


def _bucket(request: Request) -> tuple[str, bool]:
    """The caller's counter name, and whether it is a login or token call."""
    address = request.client.host if request.client else "unknown"
    if request.url.path.startswith(AUTH_PATH_PREFIX):
        return f"auth:{address}", True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return f"token:{hash_api_token(token.strip())}", False
    return f"address:{address}", False


async def enforce_rate_limit(
    request: Request,
    settings: AppSettings,
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
) -> None:
    bucket, is_auth = _bucket(request)
    limit = settings.auth_rate_limit_per_minute if is_auth else settings.rate_limit_per_minute
    if limit == 0:
        return
    async with maker() as session:
        count, reset_seconds = await count_request(session, bucket)
        await session.commit()
    state = RateLimitState(limit=limit, count=count, reset_seconds=reset_seconds)
    setattr(request.state, STATE_KEY, state)
    if state.exceeded:
        raise TooManyRequests(
            f"More than {limit} requests a minute; try again in {reset_seconds} seconds."
        )
