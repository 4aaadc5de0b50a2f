"""Request dependencies: the session (one unit of work), the caller, paging and If-Match."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import service as auth_service
from app.auth.schemas import Principal, Scope
from app.core.config import Settings
from app.core.errors import Forbidden, PreconditionFailed, Unauthorized
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.privacy import patterns as privacy_patterns


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def get_session(
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed once after the handler, before the response."""
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_masking_session(
    session: Annotated[AsyncSession, Depends(get_session, scope="function")],
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
) -> AsyncSession:
    """The request's session, after the configured patterns that mask subjects, custom fields
    and notes in responses are brought up to date with the database (any process may change
    them). The check runs in a short session of its own, so the request's transaction starts
    with the handler's work and a handler committing in a session of its own (a login
    counting a failure) is never undone by the request's rollback."""
    async with maker() as check:
        await privacy_patterns.refresh(check)
    return session


DbSession = Annotated[AsyncSession, Depends(get_masking_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]

bearer = HTTPBearer(auto_error=False, description="A personal API token: `Bearer tkt_...`")

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _token_principal(
    request: Request,
    session: AsyncSession,
    credentials: HTTPAuthorizationCredentials | None,
) -> Principal:
    if credentials is None:
        raise Unauthorized(
            "Send an API token as `Authorization: Bearer <token>`; "
            "get one with POST /api/v1/auth/login or `ticketry admin create-token`."
        )
    return await auth_service.authenticate(
        session,
        credentials.credentials,
        source_ip=request.client.host if request.client else None,
        request_id=request.state.request_id,
        touch_interval=timedelta(minutes=1),
    )


async def get_principal(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return _with_scope_for(request, await _token_principal(request, session, credentials))


def _with_scope_for(request: Request, principal: Principal) -> Principal:
    needed = Scope.read if request.method in _READ_METHODS else Scope.write
    if needed not in principal.scopes:
        raise Forbidden(f"This token lacks the `{needed.value}` scope needed for this call.")
    return principal


async def get_enrolling_principal(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of the two-factor enrolment calls: a token limited to enrolling will do."""
    principal = await _token_principal(request, session, credentials)
    if Scope.two_factor_enrolment in principal.scopes:
        return principal
    return _with_scope_for(request, principal)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
EnrollingPrincipal = Annotated[Principal, Depends(get_enrolling_principal)]


def page_limit(
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    ] = DEFAULT_PAGE_SIZE,
) -> int:
    return limit


PageLimit = Annotated[int, Depends(page_limit)]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` from the previous page; omit for the first.")
]


def if_match_version(
    if_match: Annotated[
        str | None,
        Header(description="The resource's ETag; the update fails with 412 if it changed since."),
    ] = None,
) -> int | None:
    """The version the caller last saw, from ``If-Match`` (``*`` or absent: any version)."""
    if if_match is None or if_match.strip() == "*":
        return None
    # If-Match compares strongly (RFC 9110): a weak tag never matches.
    tag = if_match.strip().strip('"')
    if not tag.isdigit():
        raise PreconditionFailed(
            f"If-Match {if_match!r} is not an ETag of this resource; GET it again and resend."
        )
    return int(tag)


IfMatch = Annotated[int | None, Depends(if_match_version)]


def etag(version: int) -> str:
    return f'"{version}"'
