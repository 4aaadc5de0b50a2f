from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.types import EmailAddress, reject_null, unique_in_order
from app.mailboxes.models import (
    AfterImport,
    ImapSecurity,
    Mailbox,
    MailboxAuth,
    MailboxFolder,
    MailboxState,
    MailboxStatus,
    SmtpSecurity,
)

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_host(value: str) -> str:
    """A host name (lower-case, no trailing dot) or an IP address (IPv6 without brackets)."""
    host = value.strip().lower().removesuffix(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise ValueError(
            "not a host name or IP address: give the server's name alone, like imap.example.com "
            "(no scheme, port or path)"
        )
    return host


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine (no DNS lookup: the name itself must say so)."""
    host = host.strip().lower().removesuffix(".").removeprefix("[").removesuffix("]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL, like https://login.example.com/oauth2/token")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            "must use https: over plain http the client secret and refresh token would cross the "
            "network readable (http is only allowed for a server on this machine)"
        )
    return parts.geturl()


MailboxName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Kundeservice Århus"]),
]
Host = Annotated[
    str,
    Field(min_length=1, max_length=253, examples=["imap.example.dk"]),
    AfterValidator(normalise_host),
]
Port = Annotated[int, Field(ge=1, le=65535)]
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=320),
    Field(examples=["støtte@example.dk"]),
]
FolderName = Annotated[str, Field(min_length=1, max_length=500, examples=["INBOX"])]
Folders = Annotated[
    list[FolderName],
    Field(min_length=1, max_length=50, description="Folders read for new mail."),
    AfterValidator(unique_in_order),
]
Addresses = Annotated[
    list[EmailAddress],
    Field(
        max_length=100,
        description="The addresses this mailbox receives for; an address belongs to one "
        "mailbox only.",
        examples=[["støtte@example.dk"]],
    ),
    AfterValidator(unique_in_order),
]
PollInterval = Annotated[
    int, Field(ge=10, le=3600, description="Seconds between looks for new mail.")
]
Secret = Annotated[SecretStr, Field(min_length=1, max_length=10_000)]
TokenUrl = Annotated[
    str,
    Field(max_length=2000, examples=["https://login.example.com/oauth2/token"]),
    AfterValidator(_token_url),
]
FromName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"
    ),
    Field(description="The sender's name shown to customers.", examples=["Kundeservice Århus"]),
]
ClientId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Scope = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    Field(examples=["https://outlook.office.com/IMAP.AccessAsUser.All offline_access"]),
]

_WRITE_ONLY = "Write-only: stored encrypted, never shown again."
_SMTP_HOST = "Where replies from this mailbox are sent; null: the mailbox only receives."
_SMTP_PORT = "Needed with `smtp_host`: usually 587 with `starttls`, 465 with `tls`."
_SMTP_SECURITY = (
    "`starttls` (required, usually port 587), `tls` (implicit, usually port 465), or `none` "
    "(only for a relay on this machine)."
)
_SMTP_USERNAME = "The SMTP login; null: `username`."
_SMTP_PASSWORD = f"The SMTP password; null: the mailbox's `password` or OAuth token. {_WRITE_ONLY}"
_FROM_ADDRESS = "The address replies are sent from; null: the first of `addresses`."
_ACKNOWLEDGE = "Answer each new ticket from this mailbox with an acknowledgement."
_ACKNOWLEDGEMENT_TEMPLATE = "The template of the acknowledgement."


class MailboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: MailboxName
    active: bool = True
    imap_host: Host
    imap_port: Port | None = Field(
        default=None, description="Omit for the usual port: 993 with `tls`, 143 otherwise."
    )
    imap_security: ImapSecurity = Field(
        default=ImapSecurity.tls,
        description="`tls` (implicit, port 993), `starttls`, or `none` (only for a server on "
        "this machine).",
    )
    username: Username
    auth_method: MailboxAuth = MailboxAuth.password
    password: Secret | None = Field(
        default=None, description=f"Needed for `password` authentication. {_WRITE_ONLY}"
    )
    folders: Folders = Field(default_factory=lambda: ["INBOX"])
    after_import: AfterImport = AfterImport.mark_seen
    move_to_folder: FolderName | None = Field(
        default=None, description="Where `after_import: move` puts imported mail."
    )
    default_queue_id: int | None = Field(
        default=None, description="Queue for mail no routing rule places."
    )
    addresses: Addresses = Field(default_factory=list)
    poll_interval_seconds: PollInterval = 60
    oauth_token_url: TokenUrl | None = None
    oauth_client_id: ClientId | None = None
    oauth_client_secret: Secret | None = Field(default=None, description=_WRITE_ONLY)
    oauth_scope: Scope | None = None
    oauth_refresh_token: Secret | None = Field(default=None, description=_WRITE_ONLY)
    oauth_access_token: Secret | None = Field(default=None, description=_WRITE_ONLY)
    oauth_access_token_expires_at: AwareDatetime | None = None
    smtp_host: Host | None = Field(default=None, description=_SMTP_HOST)
    smtp_port: Port | None = Field(default=None, description=_SMTP_PORT)
    smtp_security: SmtpSecurity = Field(default=SmtpSecurity.starttls, description=_SMTP_SECURITY)
    smtp_username: Username | None = Field(default=None, description=_SMTP_USERNAME)
    smtp_password: Secret | None = Field(default=None, description=_SMTP_PASSWORD)
    from_name: FromName | None = None
    from_address: EmailAddress | None = Field(default=None, description=_FROM_ADDRESS)
    acknowledge: bool = Field(default=True, description=_ACKNOWLEDGE)
    acknowledgement_template_id: int | None = Field(
        default=None, description=_ACKNOWLEDGEMENT_TEMPLATE
    )


class MailboxUpdate(BaseModel):
    """Fields sent are changed; a secret sent as null is removed."""

    model_config = ConfigDict(extra="forbid")

    name: MailboxName | None = None
    active: bool | None = None
    imap_host: Host | None = None
    imap_port: Port | None = Field(
        default=None,
        description="Left out while `imap_security` changes from one usual port to another, it "
        "follows (993 with `tls`, 143 otherwise).",
    )
    imap_security: ImapSecurity | None = None
    username: Username | None = None
    auth_method: MailboxAuth | None = None
    password: Secret | None = Field(default=None, description=_WRITE_ONLY)
    folders: Folders | None = Field(default=None, description="Replaces them.")
    after_import: AfterImport | None = None
    move_to_folder: FolderName | None = None
    default_queue_id: int | None = None
    addresses: Addresses | None = Field(default=None, description="Replaces them.")
    poll_interval_seconds: PollInterval | None = None
    oauth_token_url: TokenUrl | None = None
    oauth_client_id: ClientId | None = None
    oauth_client_secret: Secret | None = Field(default=None, description=_WRITE_ONLY)
    oauth_scope: Scope | None = None
    oauth_refresh_token: Secret | None = Field(default=None, description=_WRITE_ONLY)
    oauth_access_token: Secret | None = Field(default=None, description=_WRITE_ONLY)
    oauth_access_token_expires_at: AwareDatetime | None = None
    smtp_host: Host | None = Field(default=None, description=_SMTP_HOST)
    smtp_port: Port | None = Field(default=None, description=_SMTP_PORT)
    smtp_security: SmtpSecurity | None = Field(default=None, description=_SMTP_SECURITY)
    smtp_username: Username | None = Field(default=None, description=_SMTP_USERNAME)
    smtp_password: Secret | None = Field(default=None, description=_SMTP_PASSWORD)
    from_name: FromName | None = None
    from_address: EmailAddress | None = Field(default=None, description=_FROM_ADDRESS)
    acknowledge: bool | None = Field(default=None, description=_ACKNOWLEDGE)
    acknowledgement_template_id: int | None = Field(
        default=None, description=_ACKNOWLEDGEMENT_TEMPLATE
    )

    _not_null = field_validator(
        "name",
        "active",
        "imap_host",
        "imap_port",
        "imap_security",
        "username",
        "auth_method",
        "folders",
        "after_import",
        "addresses",
        "poll_interval_seconds",
        "smtp_security",
        "acknowledge",
    )(reject_null)


class OAuthTokenHandover(BaseModel):
    """A fresh OAuth 2 token from an integration that signs in on the mailbox's behalf."""

    model_config = ConfigDict(extra="forbid")

    access_token: Secret = Field(description=_WRITE_ONLY)
    refresh_token: Secret | None = Field(
        default=None, description=f"Replaces the stored one when given. {_WRITE_ONLY}"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the access token expires; omit when unknown."
    )


@dataclass(frozen=True)
class MailboxView:
    """A mailbox with how reading it goes: what the API shows."""

    mailbox: Mailbox
    status: MailboxStatus | None
    folder_states: Sequence[MailboxFolder]

    @property
    def id(self) -> int:
        return self.mailbox.id

    @property
    def version(self) -> int:
        return self.mailbox.version


class MailboxStatusRead(BaseModel):
    """How reading the mailbox goes, as the reader last reported."""

    model_config = ConfigDict(from_attributes=True)

    state: MailboxState = MailboxState.new
    reader: str | None = Field(default=None, description="The process reading the mailbox.")
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


class MailboxFolderRead(BaseModel):
    """Where reading a folder stands."""

    model_config = ConfigDict(from_attributes=True)

    folder: str
    uidvalidity: int | None
    last_uid: int = Field(description="The last message (by UID) stored from the folder.")


class MailboxSettingsRead(BaseModel):
    """A mailbox's configuration; secrets appear only as whether they are set."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    active: bool
    imap_host: str
    imap_port: int
    imap_security: ImapSecurity
    username: str
    auth_method: MailboxAuth
    has_password: bool
    folders: list[str]
    after_import: AfterImport
    move_to_folder: str | None
    default_queue_id: int | None
    addresses: list[str]
    poll_interval_seconds: int
    oauth_token_url: str | None
    oauth_client_id: str | None
    has_oauth_client_secret: bool
    oauth_scope: str | None
    has_oauth_refresh_token: bool
    has_oauth_access_token: bool
    oauth_access_token_expires_at: datetime | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: SmtpSecurity
    smtp_username: str | None
    has_smtp_password: bool
    from_name: str | None
    from_address: str | None
    acknowledge: bool
    acknowledgement_template_id: int | None
    created_at: datetime
    updated_at: datetime
    version: int

    @model_validator(mode="before")
    @classmethod
    def _from_mailbox(cls, data: Any) -> Any:
        """Read a ``Mailbox`` (or a ``MailboxView``) without ever touching a secret's value."""
        live: dict[str, Any] = {}
        if isinstance(data, MailboxView):
            live = {
                "status": data.status or MailboxStatusRead(),
                "folder_states": data.folder_states,
            }
            data = data.mailbox
        if not isinstance(data, Mailbox):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        return {
            **fields,
            "has_password": data.password_encrypted is not None,
            "has_oauth_client_secret": data.oauth_client_secret_encrypted is not None,
            "has_oauth_refresh_token": data.oauth_refresh_token_encrypted is not None,
            "has_oauth_access_token": data.oauth_access_token_encrypted is not None,
            "has_smtp_password": data.smtp_password_encrypted is not None,
            **live,
        }


class MailboxRead(MailboxSettingsRead):
    """The mailbox and how reading it goes. The ETag covers the configuration: the status,
    folder states and a refreshed access token change without it."""

    status: MailboxStatusRead
    folder_states: list[MailboxFolderRead]


class ImapErrorType(StrEnum):
    auth = "auth"
    connect = "connect"
    tls = "tls"
    timeout = "timeout"
    folder = "folder"


class FolderCheck(BaseModel):
    folder: str
    exists: int = Field(description="Messages in the folder.")
    uidvalidity: int


class SmtpCheck(BaseModel):
    """Whether the SMTP server took the mailbox's login."""

    ok: bool
    error: str | None = Field(default=None, description="What went wrong and what to do about it.")


SmtpCheckResult = Annotated[
    SmtpCheck | None,
    Field(
        description="Sending: connecting to `smtp_host` and logging in (`ok` and `folders` or "
        "`error` are about reading); null when the mailbox has no SMTP server."
    ),
]


class MailboxTestPassed(BaseModel):
    ok: Literal[True] = True
    folders: list[FolderCheck]
    smtp: SmtpCheckResult = None


class MailboxTestFailed(BaseModel):
    ok: Literal[False] = False
    error: str = Field(description="What went wrong and what to do about it.")
    error_type: ImapErrorType
    smtp: SmtpCheckResult = None


MailboxTestResult = Annotated[MailboxTestPassed | MailboxTestFailed, Field(discriminator="ok")]
