from __future__ import annotations

import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core import crypto
from app.core.clock import utcnow
from app.core.errors import Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.types import normalise_email
from app.core.uniqueness import check_addresses_free, check_free
from app.ingest.imap import (
    ImapAuthError,
    ImapClient,
    ImapConnectError,
    ImapError,
    ImapSettings,
    ImapTimeout,
    ImapTlsError,
)
from app.mailboxes import repository
from app.mailboxes.models import AfterImport, ImapSecurity, Mailbox, MailboxAuth, SmtpSecurity
from app.mailboxes.schemas import (
    FolderCheck,
    ImapErrorType,
    MailboxCreate,
    MailboxSettingsRead,
    MailboxTestFailed,
    MailboxTestPassed,
    MailboxUpdate,
    MailboxView,
    OAuthTokenHandover,
    SmtpCheck,
    is_loopback_host,
)
from app.outbound.smtp import SmtpFailure, SmtpSettings, check_login
from app.queues import service as queues

ENTITY = "mailbox"
_BY_NAME = SortKey(Mailbox.name, Mailbox.id, descending=False)

SECRET_COLUMNS = {
    "password": "password_encrypted",
    "oauth_client_secret": "oauth_client_secret_encrypted",
    "oauth_refresh_token": "oauth_refresh_token_encrypted",
    "oauth_access_token": "oauth_access_token_encrypted",
    "smtp_password": "smtp_password_encrypted",
}
"""Write-only request fields and the columns that keep them encrypted."""

TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
"""An access token expiring sooner than this is refreshed before use."""
ASSUMED_TOKEN_LIFETIME = timedelta(hours=1)
"""For a token response without ``expires_in`` (the usual lifetime of Microsoft's and
Google's access tokens)."""
MAX_ERROR_LENGTH = 2000


def default_port(security: ImapSecurity) -> int:
    return 993 if security is ImapSecurity.tls else 143


def _snapshot(mailbox: Mailbox) -> audit.Snapshot:
    """The configuration as the API shows it: secrets only as whether they are set."""
    return audit.snapshot(MailboxSettingsRead.model_validate(mailbox))


async def _views(session: AsyncSession, mailboxes: Sequence[Mailbox]) -> list[MailboxView]:
    ids = [m.id for m in mailboxes]
    statuses = await repository.statuses(session, ids)
    folder_states = await repository.folder_states(session, ids)
    return [MailboxView(m, statuses.get(m.id), folder_states.get(m.id, [])) for m in mailboxes]


async def _view(session: AsyncSession, mailbox: Mailbox) -> MailboxView:
    (view,) = await _views(session, [mailbox])
    return view


async def _require_mailbox(session: AsyncSession, actor: Principal, mailbox_id: int) -> Mailbox:
    actor.require(AgentRole.admin)
    mailbox = await repository.get(session, mailbox_id)
    if mailbox is None:
        raise NotFound(f"Mailbox {mailbox_id} does not exist.")
    return mailbox


async def get_mailbox(session: AsyncSession, actor: Principal, mailbox_id: int) -> MailboxView:
    return await _view(session, await _require_mailbox(session, actor, mailbox_id))


async def list_mailboxes(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[MailboxView], str | None]:
    actor.require(AgentRole.admin)
    rows = await repository.list_mailboxes(session, key=_BY_NAME, cursor=cursor, limit=limit)
    kept, cursor_after = next_cursor(rows, _BY_NAME, limit)
    return await _views(session, kept), cursor_after


# --- checks ---------------------------------------------------------------------------------


async def _check_references(
    session: AsyncSession, values: dict[str, Any], mailbox_id: int | None
) -> None:
    """The checks that read other rows: a free name, free addresses, an existing queue."""
    if "name" in values:
        owner_id = await repository.id_by_name(session, values["name"])
        check_free(
            f"The name {values['name']!r}", owner_id=owner_id, entity=ENTITY, entity_id=mailbox_id
        )
    if values.get("addresses"):
        addresses = values["addresses"]
        await repository.lock_addresses(session, addresses)
        owners = await repository.find_address_owners(session, addresses, exclude_id=mailbox_id)
        check_addresses_free(
            addresses,
            holder=(owners[0].id, owners[0].name, owners[0].addresses) if owners else None,
            entity=ENTITY,
        )
    queue_id = values.get("default_queue_id")
    if queue_id is not None and await queues.find_queue(session, queue_id) is None:
        raise Invalid(f"Queue {queue_id} does not exist.", field="body.default_queue_id")
    await check_acknowledgement_template(session, values.get("acknowledgement_template_id"))


async def check_acknowledgement_template(session: AsyncSession, template_id: int | None) -> None:
    """Refuse an acknowledgement template that does not exist (mailboxes and queues name one
    in the same field)."""
    if template_id is not None and not await repository.template_exists(session, template_id):
        raise Invalid(
            f"Template {template_id} does not exist.", field="body.acknowledgement_template_id"
        )


def _check_consistency(values: dict[str, Any], mailbox: Mailbox | None) -> None:
    """The rules between fields, on the mailbox as it will be: ``values`` over ``mailbox``."""

    def will_be(field: str) -> Any:
        return values[field] if field in values or mailbox is None else getattr(mailbox, field)

    def will_have(secret: str) -> bool:
        if secret in values or mailbox is None:
            return values.get(secret) is not None
        return getattr(mailbox, SECRET_COLUMNS[secret]) is not None

    def refuse_plain_text(
        protocol: str, plain: ImapSecurity | SmtpSecurity, tls_port: int, starttls_port: int
    ) -> None:
        host = will_be(f"{protocol}_host")
        if will_be(f"{protocol}_security") is plain and host and not is_loopback_host(host):
            raise Invalid(
                f"`{protocol}_security: none` sends the password and every mail over the network "
                "in plain text, so it is only allowed for a server on this machine (localhost, "
                f"127.0.0.1, ::1). Use `tls` (usually port {tls_port}) or `starttls` (usually "
                f"port {starttls_port}).",
                field=f"body.{protocol}_security",
            )

    refuse_plain_text("imap", ImapSecurity.none, 993, 143)
    refuse_plain_text("smtp", SmtpSecurity.none, 465, 587)
    if will_be("smtp_host") is not None and will_be("smtp_port") is None:
        raise Invalid(
            "`smtp_host` needs `smtp_port`: usually 587 with `starttls`, 465 with `tls`.",
            field="body.smtp_port",
        )
    if will_be("after_import") is AfterImport.move:
        target = will_be("move_to_folder")
        if not target:
            raise Invalid(
                "`after_import: move` needs `move_to_folder`, the folder imported mail is "
                "moved to (e.g. `INBOX/Imported`).",
                field="body.move_to_folder",
            )
        if target in will_be("folders"):
            raise Invalid(
                f"`move_to_folder` {target!r} is one of the folders read, so moved mail would "
                "be read again: choose a folder outside `folders`.",
                field="body.move_to_folder",
            )
    if will_be("auth_method") is MailboxAuth.password and not will_have("password"):
        raise Invalid(
            "`auth_method: password` needs the mailbox's `password`.", field="body.password"
        )
    if will_have("oauth_refresh_token") and not will_be("oauth_token_url"):
        raise Invalid(
            "A refresh token is of no use without `oauth_token_url`, the provider's token "
            "endpoint that exchanges it for access tokens.",
            field="body.oauth_token_url",
        )


def _apply(mailbox: Mailbox, values: dict[str, Any], secret_key: str) -> list[str]:
    """Set the values on the mailbox, secrets encrypted; returns the secrets set or removed."""
    secrets_changed = []
    for field, value in values.items():
        column = SECRET_COLUMNS.get(field)
        if column is None:
            setattr(mailbox, field, value)
            continue
        if value is None and getattr(mailbox, column) is None:
            continue
        stored = None if value is None else crypto.encrypt(secret_key, value.get_secret_value())
        setattr(mailbox, column, stored)
        secrets_changed.append(field)
    return secrets_changed


# --- API ------------------------------------------------------------------------------------


async def create_mailbox(
    session: AsyncSession, actor: Principal, data: MailboxCreate, *, secret_key: str
) -> MailboxView:
    actor.require(AgentRole.admin)
    values = data.model_dump()
    if values["imap_port"] is None:
        values["imap_port"] = default_port(data.imap_security)
    await _check_references(session, values, None)
    _check_consistency(values, None)
    mailbox = Mailbox()
    _apply(mailbox, values, secret_key)
    session.add(mailbox)
    await session.flush()
    await audit.record(
        session, actor, "mailbox.created", ENTITY, mailbox.id, after=_snapshot(mailbox)
    )
    return await _view(session, mailbox)


async def update_mailbox(
    session: AsyncSession,
    actor: Principal,
    mailbox_id: int,
    changes: MailboxUpdate,
    expected_version: int | None,
    *,
    secret_key: str,
) -> MailboxView:
    mailbox = await _require_mailbox(session, actor, mailbox_id)
    check_version(mailbox.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    if (
        "imap_security" in values
        and "imap_port" not in values
        and mailbox.imap_port == default_port(mailbox.imap_security)
    ):
        # The port was the usual one for the old security: it becomes the new one's.
        values["imap_port"] = default_port(values["imap_security"])
    await _check_references(session, values, mailbox.id)
    _check_consistency(values, mailbox)
    before = _snapshot(mailbox)
    secrets_changed = _apply(mailbox, values, secret_key)
    await session.flush()
    after = _snapshot(mailbox)
    if secrets_changed:
        # Which secrets changed, never their values (not even encrypted).
        after["secrets_changed"] = secrets_changed
    await audit.record(
        session, actor, "mailbox.updated", ENTITY, mailbox.id, before=before, after=after
    )
    return await _view(session, mailbox)


async def delete_mailbox(
    session: AsyncSession, actor: Principal, mailbox_id: int, expected_version: int | None
) -> None:
    """Delete the mailbox; its status and folder states go with it, mail stored from it stays."""
    mailbox = await _require_mailbox(session, actor, mailbox_id)
    check_version(mailbox.version, expected_version)
    before = _snapshot(mailbox)
    await session.delete(mailbox)
    await session.flush()
    await audit.record(session, actor, "mailbox.deleted", ENTITY, mailbox_id, before=before)


async def _store_tokens(
    session: AsyncSession,
    mailbox_id: int,
    *,
    secret_key: str,
    access_token: str,
    expires_at: datetime | None,
    refresh_token: str | None,
) -> None:
    values: dict[str, str | datetime | None] = {
        "oauth_access_token_encrypted": crypto.encrypt(secret_key, access_token),
        "oauth_access_token_expires_at": expires_at,
    }
    if refresh_token is not None:
        values["oauth_refresh_token_encrypted"] = crypto.encrypt(secret_key, refresh_token)
    await repository.store_oauth_tokens(session, mailbox_id, values)


async def hand_over_oauth_token(
    session: AsyncSession,
    actor: Principal,
    mailbox_id: int,
    token: OAuthTokenHandover,
    *,
    secret_key: str,
) -> MailboxView:
    """Store a fresh access token (and refresh token) from an integration. Like a refresh by
    the reader, this is no change of the configuration: the version stays."""
    mailbox = await _require_mailbox(session, actor, mailbox_id)
    if mailbox.auth_method is not MailboxAuth.xoauth2:
        raise Invalid(
            f"Mailbox {mailbox_id} signs in with a password; set `auth_method: xoauth2` first "
            "(PATCH the mailbox) to use OAuth tokens."
        )
    refresh_token = token.refresh_token.get_secret_value() if token.refresh_token else None
    await _store_tokens(
        session,
        mailbox.id,
        secret_key=secret_key,
        access_token=token.access_token.get_secret_value(),
        expires_at=token.expires_at,
        refresh_token=refresh_token,
    )
    secrets_changed = ["oauth_access_token"]
    if refresh_token is not None:
        secrets_changed.append("oauth_refresh_token")
    await audit.record(
        session,
        actor,
        "mailbox.oauth_token_received",
        ENTITY,
        mailbox.id,
        after={
            "secrets_changed": secrets_changed,
            "oauth_access_token_expires_at": token.expires_at.isoformat()
            if token.expires_at
            else None,
        },
    )
    return await _view(session, mailbox)


# --- Connecting (the reader and the API's test) ---------------------------------------------


def _usable(access_token: str | None, expires_at: datetime | None) -> str | None:
    """The access token, unless it is missing or about to expire."""
    if expires_at is not None and expires_at - utcnow() <= TOKEN_REFRESH_MARGIN:
        return None
    return access_token


def _provider_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        description = body.get("error_description")
        return f"{body['error']}: {description}" if description else str(body["error"])
    return response.text[:500] or response.reason_phrase


async def _refresh_access_token(
    session: AsyncSession,
    mailbox: Mailbox,
    refresh_token_encrypted: str,
    *,
    secret_key: str,
    http_timeout: float,
) -> str:
    """Exchange the refresh token for an access token (RFC 6749 section 6), store it, return it."""
    token_url = mailbox.oauth_token_url
    assert token_url is not None
    form = {
        "grant_type": "refresh_token",
        "refresh_token": crypto.decrypt(secret_key, refresh_token_encrypted),
    }
    if mailbox.oauth_client_id:
        form["client_id"] = mailbox.oauth_client_id
    if mailbox.oauth_client_secret_encrypted:
        form["client_secret"] = crypto.decrypt(secret_key, mailbox.oauth_client_secret_encrypted)
    if mailbox.oauth_scope:
        form["scope"] = mailbox.oauth_scope
    try:
        async with httpx.AsyncClient(timeout=http_timeout) as client:
            response = await client.post(
                token_url, data=form, headers={"Accept": "application/json"}
            )
    except httpx.HTTPError as exc:
        raise ImapAuthError(
            f"The token endpoint {token_url} could not be reached to refresh the access token "
            f"({type(exc).__name__}: {exc}); check `oauth_token_url`."
        ) from exc
    grant: Any = None
    if response.is_success:
        try:
            grant = response.json()
        except ValueError:
            grant = None
    access_token = grant.get("access_token") if isinstance(grant, dict) else None
    if not isinstance(access_token, str) or not access_token:
        raise ImapAuthError(
            f"The token endpoint refused to refresh the access token (HTTP "
            f"{response.status_code}: {_provider_error(response)}). If the refresh token was "
            "revoked or has expired, sign in again and hand over new tokens "
            f"(PUT /api/v1/mailboxes/{mailbox.id}/oauth-token)."
        )
    assert isinstance(grant, dict)
    try:
        lifetime = timedelta(seconds=int(grant["expires_in"]))
    except (KeyError, TypeError, ValueError):
        lifetime = ASSUMED_TOKEN_LIFETIME
    rotated = grant.get("refresh_token")
    await _store_tokens(
        session,
        mailbox.id,
        secret_key=secret_key,
        access_token=access_token,
        expires_at=utcnow() + lifetime,
        refresh_token=rotated if isinstance(rotated, str) and rotated else None,
    )
    return access_token


async def _access_token(
    session: AsyncSession, mailbox: Mailbox, *, secret_key: str, http_timeout: float
) -> str:
    usable = _usable(mailbox.oauth_access_token_encrypted, mailbox.oauth_access_token_expires_at)
    if usable is not None:
        return crypto.decrypt(secret_key, usable)
    # The mailbox may be an older copy: look at what is stored now, one refresher at a time.
    await repository.lock_token_refresh(session, mailbox.id)
    stored = await repository.oauth_tokens(session, mailbox.id)
    if stored is None:
        raise ImapAuthError(f"Mailbox {mailbox.id} was deleted.")
    encrypted, expires_at, refresh_encrypted = stored
    usable = _usable(encrypted, expires_at)
    if usable is not None:
        return crypto.decrypt(secret_key, usable)
    if refresh_encrypted is not None and mailbox.oauth_token_url:
        return await _refresh_access_token(
            session, mailbox, refresh_encrypted, secret_key=secret_key, http_timeout=http_timeout
        )
    if encrypted is not None:
        # Expiring, and no way to refresh it: the server decides.
        return crypto.decrypt(secret_key, encrypted)
    raise ImapAuthError(
        f"Mailbox {mailbox.name!r} has no OAuth access token: hand one over "
        f"(PUT /api/v1/mailboxes/{mailbox.id}/oauth-token), or give it `oauth_refresh_token` "
        "and `oauth_token_url` so it can get its own."
    )


async def _credentials(
    session: AsyncSession,
    mailbox: Mailbox,
    *,
    secret_key: str,
    timeout: float,  # noqa: ASYNC109 - for a token refresh, not for this call
    own_password: str | None = None,
) -> tuple[str | None, str | None]:
    """``(password, None)`` or ``(None, OAuth access token)``, decrypted: ``own_password``
    (encrypted) when given, else the mailbox's password or access token (refreshed when
    needed). Raises ``ImapAuthError`` when there are no usable credentials."""
    try:
        if own_password is not None:
            return crypto.decrypt(secret_key, own_password), None
        if mailbox.auth_method is MailboxAuth.xoauth2:
            return None, await _access_token(
                session, mailbox, secret_key=secret_key, http_timeout=timeout
            )
        if mailbox.password_encrypted is not None:
            return crypto.decrypt(secret_key, mailbox.password_encrypted), None
    except crypto.SecretKeyChanged as exc:
        raise ImapAuthError(f"{exc} (mailbox {mailbox.name!r})") from exc
    raise ImapAuthError(
        f"Mailbox {mailbox.name!r} has no password: PATCH /api/v1/mailboxes/{mailbox.id} with "
        "`password`."
    )


async def imap_settings(
    session: AsyncSession,
    mailbox: Mailbox,
    *,
    secret_key: str,
    timeout: float,  # noqa: ASYNC109 - for each connection and request, not for this call
    batch_size: int,
    ssl_context: ssl.SSLContext | None = None,
) -> ImapSettings:
    """How to connect to the mailbox, credentials decrypted. For XOAUTH2, a missing or expiring
    access token is refreshed first and stored: call this in a transaction of its own that is
    committed at once (a rotated refresh token must not be lost, and the lock that keeps two
    refreshes apart is held until the transaction ends). Raises ``ImapAuthError`` when there
    are no usable credentials."""
    password, token = await _credentials(session, mailbox, secret_key=secret_key, timeout=timeout)
    return ImapSettings(
        host=mailbox.imap_host,
        port=mailbox.imap_port,
        security=mailbox.imap_security,
        username=mailbox.username,
        password=password,
        oauth_token=token,
        timeout=timeout,
        batch_size=batch_size,
        ssl_context=ssl_context,
    )


async def smtp_settings(
    session: AsyncSession,
    mailbox: Mailbox,
    *,
    secret_key: str,
    timeout: float,  # noqa: ASYNC109 - for each connection and request, not for this call
    ssl_context: ssl.SSLContext | None = None,
) -> SmtpSettings:
    """How to send through the mailbox's SMTP server, credentials decrypted: `smtp_username`
    (else `username`) with `smtp_password` (else the mailbox's password or OAuth access
    token). A missing or expiring access token is refreshed and stored as for
    :func:`imap_settings`, with the same need for a transaction of its own. Raises
    ``SmtpFailure`` (not permanent: fixing the settings helps) when the mailbox has no SMTP
    server or no usable credentials."""
    if mailbox.smtp_host is None or mailbox.smtp_port is None:
        raise SmtpFailure(
            f"Mailbox {mailbox.name!r} has no SMTP server to send through: PATCH "
            f"/api/v1/mailboxes/{mailbox.id} with `smtp_host` and `smtp_port`.",
            permanent=False,
        )
    try:
        password, token = await _credentials(
            session,
            mailbox,
            secret_key=secret_key,
            timeout=timeout,
            own_password=mailbox.smtp_password_encrypted,
        )
    except ImapAuthError as exc:
        raise SmtpFailure(str(exc), permanent=False) from exc
    return SmtpSettings(
        host=mailbox.smtp_host,
        port=mailbox.smtp_port,
        security=mailbox.smtp_security,
        username=mailbox.smtp_username or mailbox.username,
        password=password,
        oauth_token=token,
        timeout=timeout,
        ssl_context=ssl_context,
    )


def sender_address(mailbox: Mailbox) -> tuple[str | None, str]:
    """Who mail from the mailbox is from: ``(display name, address)``, the address being
    `from_address`, else the first of `addresses`, else the login `username`."""
    address = mailbox.from_address or next(iter(mailbox.addresses), mailbox.username)
    return mailbox.from_name, address


def _failure(exc: ImapError, mailbox: Mailbox, *, folder: str | None) -> MailboxTestFailed:
    """The test's answer to an IMAP error: its kind, and after the client's own explanation
    the mailbox fields concerned (which the client does not know)."""
    if isinstance(exc, ImapAuthError):
        kind = ImapErrorType.auth
        if mailbox.auth_method is MailboxAuth.xoauth2:
            fields = (
                "`username`; hand over a current access token with "
                f"PUT /api/v1/mailboxes/{mailbox.id}/oauth-token"
            )
        else:
            fields = (
                "`username`, `password`; Microsoft 365 and Gmail need `xoauth2` or an app password"
            )
    elif isinstance(exc, ImapTlsError):
        kind = ImapErrorType.tls
        fields = (
            "`imap_security`, `imap_port`: 993 is usually `tls`, 143 `starttls`; a private CA "
            "can be trusted with TICKETRY_IMAP_CA_FILE"
        )
    elif isinstance(exc, ImapTimeout):
        kind = ImapErrorType.timeout
        fields = "`imap_host`, `imap_port`; a firewall that drops connections looks like this"
    elif isinstance(exc, ImapConnectError) or folder is None:
        kind = ImapErrorType.connect
        fields = "`imap_host`, `imap_port`"
    else:
        kind = ImapErrorType.folder
        fields = "`folders`; case and separators matter"
    return MailboxTestFailed(error=_explained(exc, fields), error_type=kind)


def _explained(exc: Exception, fields: str | None) -> str:
    """A client's explanation as a sentence, followed by the mailbox fields concerned."""
    said = str(exc).rstrip(".")
    return f"{said[:1].upper()}{said[1:]}" + (f" (mailbox fields: {fields})." if fields else ".")


def _smtp_failure(exc: SmtpFailure) -> SmtpCheck:
    """The test's answer to a failed SMTP login, with the mailbox fields concerned."""
    if isinstance(exc.__cause__, aiosmtplib.SMTPAuthenticationError):
        fields: str | None = (
            "`smtp_username`, `smtp_password`; when they are null, `username` and the "
            "mailbox's password or OAuth token are used"
        )
    elif exc.code is None:
        # No answer from a server: not reached, or not over the expected TLS.
        fields = "`smtp_host`, `smtp_port`, `smtp_security`: 587 is usually `starttls`, 465 `tls`"
    else:
        fields = None
    return SmtpCheck(ok=False, error=_explained(exc, fields))


async def check_connection(
    session: AsyncSession,
    actor: Principal,
    mailbox_id: int,
    *,
    secret_key: str,
    timeout: float,  # noqa: ASYNC109 - for each connection and request, not for this call
    smtp_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> MailboxTestPassed | MailboxTestFailed:
    """Connect with the stored credentials, log in and open every folder read, and log in to
    the SMTP server when there is one; the result says what failed and what to do about it."""
    mailbox = await _require_mailbox(session, actor, mailbox_id)
    result = await _check_imap(
        session, mailbox, secret_key=secret_key, timeout=timeout, ssl_context=ssl_context
    )
    if mailbox.smtp_host is not None:
        result.smtp = await _check_smtp(
            session,
            mailbox,
            secret_key=secret_key,
            timeout=smtp_timeout,
            ssl_context=ssl_context,
        )
    return result


async def _check_smtp(
    session: AsyncSession,
    mailbox: Mailbox,
    *,
    secret_key: str,
    timeout: float,  # noqa: ASYNC109 - for each connection and request, not for this call
    ssl_context: ssl.SSLContext | None,
) -> SmtpCheck:
    try:
        settings = await smtp_settings(
            session, mailbox, secret_key=secret_key, timeout=timeout, ssl_context=ssl_context
        )
    except SmtpFailure as exc:
        # No usable credentials: the message says which and what to do.
        return SmtpCheck(ok=False, error=exc.reason)
    try:
        await check_login(settings)
    except SmtpFailure as exc:
        return _smtp_failure(exc)
    return SmtpCheck(ok=True)


async def _check_imap(
    session: AsyncSession,
    mailbox: Mailbox,
    *,
    secret_key: str,
    timeout: float,  # noqa: ASYNC109 - for each connection and request, not for this call
    ssl_context: ssl.SSLContext | None,
) -> MailboxTestPassed | MailboxTestFailed:
    try:
        settings = await imap_settings(
            session,
            mailbox,
            secret_key=secret_key,
            timeout=timeout,
            batch_size=1,
            ssl_context=ssl_context,
        )
    except ImapAuthError as exc:
        # No usable credentials: the message says which and what to do.
        return MailboxTestFailed(error=str(exc), error_type=ImapErrorType.auth)
    try:
        client = await ImapClient.connect(settings)
    except ImapError as exc:
        return _failure(exc, mailbox, folder=None)
    checked = []
    try:
        for folder in mailbox.folders:
            try:
                info = await client.select(folder)
            except ImapError as exc:
                return _failure(exc, mailbox, folder=folder)
            checked.append(
                FolderCheck(folder=folder, exists=info.exists, uidvalidity=info.uidvalidity)
            )
    finally:
        await client.close()
    return MailboxTestPassed(folders=checked)


# --- For the reader (no permission checks) --------------------------------------------------


async def get(session: AsyncSession, mailbox_id: int) -> Mailbox | None:
    """The mailbox, without a permission check: for the reader and other workers."""
    return await repository.get(session, mailbox_id)


async def list_active(session: AsyncSession) -> list[Mailbox]:
    return await repository.list_active(session)


async def mailbox_for_address(session: AsyncSession, address: str) -> Mailbox | None:
    """The mailbox (active or not) that serves the address, if any."""
    try:
        normalised = normalise_email(address)
    except ValueError:
        return None
    return await repository.by_address(session, normalised)


async def record_success(session: AsyncSession, mailbox_id: int, reader: str) -> None:
    """The reader got through the mailbox: state ok, the failure count starts again."""
    await repository.record_success(session, mailbox_id, reader, utcnow())


async def record_failure(session: AsyncSession, mailbox_id: int, reader: str, error: str) -> None:
    """Reading the mailbox failed: state failing, one failure more in a row."""
    await repository.record_failure(session, mailbox_id, reader, error[:MAX_ERROR_LENGTH], utcnow())


async def folder_state(
    session: AsyncSession, mailbox_id: int, folder: str
) -> tuple[int | None, int]:
    """The folder's UIDVALIDITY and the last UID stored from it; ``(None, 0)`` when unknown."""
    state = await repository.folder_state(session, mailbox_id, folder)
    return (None, 0) if state is None else state


async def save_folder_state(
    session: AsyncSession, mailbox_id: int, folder: str, uidvalidity: int, last_uid: int
) -> None:
    await repository.save_folder_state(session, mailbox_id, folder, uidvalidity, last_uid)
