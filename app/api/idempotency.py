"""``Idempotency-Key`` on POST calls: a retry gets the first answer, the change is made once.

How it stays atomic: the dependency :func:`check_idempotency_key` runs on the request's own
session (``DbSession``) before the handler. It takes a transaction-scoped advisory lock on
(token, method, path, key), so a duplicate arriving meanwhile waits for the first request's
transaction to end, then looks the key up: a stored answer with the same body hash is replayed
(by raising :class:`Replay`, which skips the handler), a different body is refused with 422, an
expired one is deleted. Otherwise it leaves a :class:`PendingKey` on the request state.
:class:`IdempotentRoute` wraps the route's handler: FastAPI builds the whole response before it
closes the ``scope="function"`` dependencies, so the wrapper sees a successful (2xx) response
while the session is still open and adds the record to it; the session dependency then commits
the handler's changes and the record together. Failed answers are not stored: a retry runs
again. Only calls made with an API token take part (the key is the token's); without one the
header is ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import AppSettings, DbSession, bearer, get_principal
from app.api.models import IdempotencyRecord
from app.core.errors import Invalid
from app.db.locks import lock_values

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STORED_HEADERS = ("content-type", "location", "etag")
STATE_KEY = "idempotency"


class Replay(Exception):
    """Raised by the dependency to answer with a stored response instead of the handler's."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(record.key)
        self.response = Response(
            content=record.body,
            status_code=record.status,
            headers={**record.headers, REPLAYED_HEADER: "true"},
        )


@dataclass(frozen=True)
class PendingKey:
    session: AsyncSession
    token_id: int
    key: str
    method: str
    path: str
    request_hash: str
    lifetime: timedelta

    async def store(self, response: Response) -> None:
        """Keep ``response`` in the request's transaction; drop this token's expired keys."""
        await self.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.token_id == self.token_id,
                IdempotencyRecord.created_at < func.now() - self.lifetime,
            )
        )
        self.session.add(
            IdempotencyRecord(
                token_id=self.token_id,
                key=self.key,
                method=self.method,
                path=self.path,
                request_hash=self.request_hash,
                status=response.status_code,
                headers={
                    name: response.headers[name]
                    for name in STORED_HEADERS
                    if name in response.headers
                },
                body=bytes(response.body),
            )
        )
        await self.session.flush()


def _valid_key(value: str) -> str:
    if not 1 <= len(value) <= 200 or not value.isprintable():
        raise Invalid(f"{HEADER} must be 1 to 200 printable characters.", field=f"header.{HEADER}")
    return value


async def check_idempotency_key(
    request: Request, session: DbSession, settings: AppSettings
) -> None:
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST":
        return
    credentials = await bearer(request)
    if credentials is None:
        return
    principal = await get_principal(request, session, credentials)
    if principal.token_id is None:
        return
    pending = PendingKey(
        session=session,
        token_id=principal.token_id,
        key=_valid_key(key),
        method=request.method,
        path=request.url.path,
        request_hash=hashlib.sha256(await request.body()).hexdigest(),
        lifetime=timedelta(hours=settings.idempotency_key_hours),
    )
    await lock_values(
        session, "idempotency-key", [f"{pending.token_id}:{pending.method}:{pending.path}:{key}"]
    )
    found = (
        await session.execute(
            select(
                IdempotencyRecord,
                IdempotencyRecord.created_at < func.now() - pending.lifetime,
            ).where(
                IdempotencyRecord.token_id == pending.token_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.method == pending.method,
                IdempotencyRecord.path == pending.path,
            )
        )
    ).first()
    if found is not None:
        record, expired = found
        if not expired and record.request_hash != pending.request_hash:
            raise Invalid(
                f"This {HEADER} was used with a different request body; "
                "send a new key for a new request.",
                field=f"header.{HEADER}",
            )
        if not expired:
            raise Replay(record)
        await session.delete(record)
        await session.flush()
    setattr(request.state, STATE_KEY, pending)


class IdempotentRoute(APIRoute):
    """Stores a successful answer for the :class:`PendingKey` the dependency left, if any."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.response
            pending: PendingKey | None = getattr(request.state, STATE_KEY, None)
            if pending is not None and 200 <= response.status_code < 300:
                await pending.store(response)
            return response

        return idempotent_handler


def make_posts_idempotent(router: APIRouter) -> None:
    """Give the router's POST routes the storing handler. Routes take their class when they are
    declared in their domain's router; this switches it before the router is included."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.methods and "POST" in route.methods:
            route.__class__ = IdempotentRoute
