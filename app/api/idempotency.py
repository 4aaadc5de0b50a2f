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

Answers that hand out a secret or a live token (:data:`SECRET_ANSWERS`: a webhook's signing
secret, a new token, two-factor seeds and recovery codes) are stored encrypted, as every other
secret at rest, and replayed decrypted. Other answers stay readable, so an erasure can find a
person's data in them. Expired answers are deleted by the scheduler's
:func:`run_idempotency_purge_pass`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args, get_origin

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import AppSettings, DbSession, bearer, get_principal
from app.api.models import IdempotencyRecord
from app.auth.schemas import LoginChallenge, RecoveryCodes, TokenCreated, TwoFactorEnrolment
from app.core import crypto
from app.core.errors import Conflict, Invalid
from app.db.batches import delete_in_batches
from app.db.locks import lock_values
from app.webhooks.schemas import WebhookWithSecret

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STORED_HEADERS = ("content-type", "location", "etag")
STATE_KEY = "idempotency"
SECRET_ANSWERS: tuple[type[BaseModel], ...] = (
    WebhookWithSecret,
    TokenCreated,
    LoginChallenge,
    TwoFactorEnrolment,
    RecoveryCodes,
)
"""Response models that hold a secret or a live token: a route answering with one of them (or
a subclass, or a union holding one) has its stored answers encrypted."""


def response_models(annotation: object) -> Iterator[type]:
    """The classes in a response model annotation: itself, a union's members, list items."""
    if get_origin(annotation) is None and isinstance(annotation, type):
        yield annotation
    for argument in get_args(annotation):
        yield from response_models(argument)


def answers_with_secrets(route: APIRoute) -> bool:
    return any(issubclass(model, SECRET_ANSWERS) for model in response_models(route.response_model))


class Replay(Exception):
    """Raised by the dependency to answer with a stored response instead of the handler's."""

    def __init__(self, record: IdempotencyRecord, body: bytes) -> None:
        super().__init__(record.key)
        self.response = Response(
            content=body,
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
    secret_key: str

    async def store(self, response: Response, *, encrypted: bool) -> None:
        """Keep ``response`` in the request's transaction, its body encrypted if told."""
        body = bytes(response.body)
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
                body=crypto.encrypt_bytes(
                    self.secret_key, body, label=crypto.IDEMPOTENT_ANSWER_LABEL
                )
                if encrypted
                else body,
                body_encrypted=encrypted,
                expires_at=func.now() + self.lifetime,
            )
        )
        await self.session.flush()


def _replay(record: IdempotencyRecord, secret_key: str) -> Replay:
    if not record.body_encrypted:
        return Replay(record, record.body)
    try:
        body = crypto.decrypt_bytes(secret_key, record.body, label=crypto.IDEMPOTENT_ANSWER_LABEL)
    except crypto.SecretKeyChanged as exc:
        raise Conflict(
            f"The answer kept for this {HEADER} cannot be read since the service's secret key "
            "changed; send a new key to make the request again."
        ) from exc
    return Replay(record, body)


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
        secret_key=settings.resolved_secret_key(),
    )
    await lock_values(
        session, "idempotency-key", [f"{pending.token_id}:{pending.method}:{pending.path}:{key}"]
    )
    found = (
        await session.execute(
            select(
                IdempotencyRecord,
                IdempotencyRecord.expires_at <= func.now(),
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
            raise _replay(record, pending.secret_key)
        await session.delete(record)
        await session.flush()
    setattr(request.state, STATE_KEY, pending)


class IdempotentRoute(APIRoute):
    """Stores a successful answer for the :class:`PendingKey` the dependency left, if any."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        encrypted = answers_with_secrets(self)

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.response
            pending: PendingKey | None = getattr(request.state, STATE_KEY, None)
            if pending is not None and 200 <= response.status_code < 300:
                await pending.store(response, encrypted=encrypted)
            return response

        return idempotent_handler


def make_posts_idempotent(router: APIRouter) -> None:
    """Give the router's POST routes the storing handler. Routes take their class when they are
    declared in their domain's router; this switches it before the router is included."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.methods and "POST" in route.methods:
            route.__class__ = IdempotentRoute


async def run_idempotency_purge_pass(
    maker: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = 1000
) -> int:
    """Delete the answers expired by ``now``, whoever's token keeps them; returns how many.
    Each batch is claimed (``FOR UPDATE SKIP LOCKED``) in a transaction of its own."""
    key = (
        IdempotencyRecord.token_id,
        IdempotencyRecord.key,
        IdempotencyRecord.method,
        IdempotencyRecord.path,
    )
    return await delete_in_batches(maker, key, IdempotencyRecord.expires_at <= now, batch=batch)
