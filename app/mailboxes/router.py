from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.ingest.poller import tls_context
from app.mailboxes import service
from app.mailboxes.schemas import (
    MailboxCreate,
    MailboxRead,
    MailboxTestFailed,
    MailboxTestPassed,
    MailboxTestResult,
    MailboxUpdate,
    OAuthTokenHandover,
)

router = APIRouter(prefix="/mailboxes", tags=["mailboxes"])


@router.get("", response_model=Page[MailboxRead], responses=responses(401, 403, 422))
async def list_mailboxes(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[MailboxRead]:
    """List the mailboxes read for mail, by name (admin)."""
    views, next_cursor = await service.list_mailboxes(
        session, principal, cursor=cursor, limit=limit
    )
    return Page(items=[MailboxRead.model_validate(v) for v in views], next_cursor=next_cursor)


@router.post(
    "",
    response_model=MailboxRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_mailbox(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    body: MailboxCreate,
    request: Request,
    response: Response,
) -> MailboxRead:
    """Add a mailbox to read (admin). Secrets are stored encrypted and never shown again.
    409 when the name or an address is taken."""
    view = await service.create_mailbox(
        session, principal, body, secret_key=settings.resolved_secret_key()
    )
    return created_with_etag(request, response, MailboxRead, view)


@router.get("/{mailbox_id}", response_model=MailboxRead, responses=responses(401, 403, 404, 422))
async def get_mailbox(
    session: DbSession, principal: CurrentPrincipal, mailbox_id: int, response: Response
) -> MailboxRead:
    """A mailbox with how reading it goes (admin)."""
    view = await service.get_mailbox(session, principal, mailbox_id)
    return read_with_etag(response, MailboxRead, view)


@router.patch(
    "/{mailbox_id}",
    response_model=MailboxRead,
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_mailbox(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    mailbox_id: int,
    body: MailboxUpdate,
    if_match: IfMatch,
    response: Response,
) -> MailboxRead:
    """Change a mailbox (admin); lists given replace the stored ones, a secret sent as null
    is removed. The reader restarts with the new settings."""
    view = await service.update_mailbox(
        session, principal, mailbox_id, body, if_match, secret_key=settings.resolved_secret_key()
    )
    return read_with_etag(response, MailboxRead, view)


@router.delete(
    "/{mailbox_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_mailbox(
    session: DbSession, principal: CurrentPrincipal, mailbox_id: int, if_match: IfMatch
) -> None:
    """Stop reading a mailbox and forget it (admin); mail stored from it stays."""
    await service.delete_mailbox(session, principal, mailbox_id, if_match)


@router.post(
    "/{mailbox_id}/test",
    response_model=MailboxTestResult,
    responses=responses(401, 403, 404, 422),
)
async def test_mailbox(
    session: DbSession, principal: CurrentPrincipal, settings: AppSettings, mailbox_id: int
) -> MailboxTestPassed | MailboxTestFailed:
    """Connect with the stored settings, log in and open each folder (admin); with an
    `smtp_host`, log in to the SMTP server too. Answers 200 either way: `ok` tells whether
    reading works, `error` what failed and what to do about it, and `smtp` the same for
    sending."""
    return await service.check_connection(
        session,
        principal,
        mailbox_id,
        secret_key=settings.resolved_secret_key(),
        timeout=settings.imap_timeout_seconds,
        smtp_timeout=settings.smtp_timeout_seconds,
        ssl_context=tls_context(settings),
    )


@router.put(
    "/{mailbox_id}/oauth-token",
    response_model=MailboxRead,
    responses=responses(401, 403, 404, 422),
)
async def hand_over_oauth_token(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    mailbox_id: int,
    body: OAuthTokenHandover,
    response: Response,
) -> MailboxRead:
    """Hand over a fresh OAuth access token (and refresh token) for an `xoauth2` mailbox
    (admin), e.g. from an integration that signs in on its behalf. Not a change of the
    configuration: the ETag stays."""
    view = await service.hand_over_oauth_token(
        session, principal, mailbox_id, body, secret_key=settings.resolved_secret_key()
    )
    return read_with_etag(response, MailboxRead, view)
