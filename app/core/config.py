"""Service settings, read from ``TICKETRY_*`` environment variables and an optional ``.env``."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class LogLevel(StrEnum):
    debug = "DEBUG"
    info = "INFO"
    warning = "WARNING"
    error = "ERROR"


class ClosedTicketReply(StrEnum):
    reopen = "reopen"
    follow_up = "follow_up"


class ConfigurationError(RuntimeError):
    """Settings that cannot work; the message says which variable to set."""


def async_database_url(url: str) -> str:
    """Accept the usual ``postgresql://`` form and point SQLAlchemy at asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    scheme = url.split("://", 1)[0] if "://" in url else url[:20]
    raise ConfigurationError(
        "TICKETRY_DATABASE_URL must be a PostgreSQL URL (postgresql://user@host/db); "
        f"it starts with {scheme!r}"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKETRY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Field(
        default=Environment.development,
        description="`production` refuses to start without TICKETRY_SECRET_KEY.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TICKETRY_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL; when unset an embedded PostgreSQL runs in the data folder.",
    )
    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for local state: the embedded PostgreSQL, the development secret key.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs and encrypts; required in production, generated in development.",
    )
    log_level: LogLevel = Field(default=LogLevel.info, description="DEBUG, INFO, WARNING or ERROR.")
    public_base_url: str = Field(
        default="http://localhost:8000",
        description="The address clients use to reach the service, for links it hands out.",
    )
    host: str = Field(default="127.0.0.1", description="Interface `ticketry serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `ticketry serve` listens on.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description=(
            "Comma-separated addresses of reverse proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto headers are trusted; `*` trusts every peer."
        ),
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=1,
        description="On SIGTERM or Ctrl+C, how long requests in flight may take to finish.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API, as JSON: `["https://app.example"]`.',
    )
    token_default_days: int = Field(
        default=90, ge=1, description="Lifetime of an API token created without an expiry."
    )
    login_token_hours: int = Field(
        default=12, ge=1, description="Lifetime of the token `POST /api/v1/auth/login` returns."
    )
    max_request_mb: int = Field(
        default=64, ge=1, description="Largest request body accepted, in MiB (attachments count)."
    )
    ticket_number_prefix: str = Field(
        default="#",
        min_length=1,
        max_length=20,
        description="Put before the ticket number in mail subjects: `[#100123]`.",
    )
    max_mail_mb: int = Field(
        default=40, ge=1, description="Larger inbound mails are quarantined, not processed."
    )
    reply_to_closed: ClosedTicketReply = Field(
        default=ClosedTicketReply.reopen,
        description="A customer's reply to a closed ticket: `reopen` it, or open a `follow_up`.",
    )
    agents_may_reveal: bool = Field(
        default=False,
        description="Agents may reveal masked sensitive values (CPR, card numbers ...) with a "
        "reason; supervisors and admins always may, external partners never.",
    )
    auto_reply_limit_per_day: int = Field(
        default=3,
        ge=0,
        description="Automatic answers (acknowledgements) one address gets per 24 hours at most.",
    )
    imap_timeout_seconds: float = Field(
        default=30, gt=0, description="Longest wait for one IMAP command before reconnecting."
    )
    imap_batch_size: int = Field(
        default=100, ge=1, le=200, description="Messages fetched per IMAP command."
    )
    imap_ca_file: Path | None = Field(
        default=None,
        description="Extra CA certificates (PEM) to trust for IMAP and SMTP TLS (a private CA).",
    )
    smtp_timeout_seconds: float = Field(
        default=30, gt=0, description="Longest wait for one SMTP command before giving up."
    )
    outbound_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Tries to send a mail through temporary failures before it is marked failed.",
    )
    outbound_retry_seconds: float = Field(
        default=60,
        gt=0,
        description="Wait before the first retry of a mail; doubled each time, at most 6 hours.",
    )
    outbound_senders: int = Field(
        default=4, ge=1, le=64, description="Mails each worker process sends at the same time."
    )
    webhook_timeout_seconds: float = Field(
        default=10, gt=0, description="Longest wait for a webhook endpoint's answer."
    )
    webhook_retry_seconds: float = Field(
        default=30,
        gt=0,
        description="Wait before the first retry of a webhook delivery; doubled each time, "
        "at most 6 hours.",
    )
    webhook_disable_after_hours: float = Field(
        default=72,
        gt=0,
        description="A webhook whose deliveries have all failed for this long is switched off.",
    )
    webhook_secret_overlap_hours: float = Field(
        default=24,
        ge=0,
        description="After a secret rotation, how long deliveries are also signed with the old "
        "secret.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks call private, loopback and link-local addresses (testing only).",
    )
    webhook_allowed_targets: list[str] = Field(
        default_factory=list,
        description="Hosts and networks webhooks may call though not public, as JSON: "
        '`["hooks.internal", "10.1.2.0/24"]`.',
    )
    webhook_senders: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Webhook endpoints each worker process posts to at once.",
    )
    mailbox_rescan_seconds: float = Field(
        default=10, gt=0, description="How often workers look for mailboxes nobody reads."
    )
    scheduler_interval_seconds: float = Field(
        default=30,
        gt=0,
        description="How often workers run the scheduler's passes (SLA, automations, follow-ups).",
    )
    bulk_max_tickets: int = Field(
        default=10_000,
        ge=1,
        description="Most tickets one bulk update (`POST /api/v1/tickets/bulk`) may change.",
    )
    bulk_batch_size: int = Field(
        default=20,
        ge=1,
        le=500,
        description="Tickets of a bulk job each worker changes per transaction.",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections kept per process (as many again on bursts).",
    )

    idempotency_key_hours: float = Field(
        default=24,
        gt=0,
        description="How long the answer to a POST sent with an `Idempotency-Key` is kept for "
        "retries.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="API requests one token (or, without one, one client address) may make per "
        "minute; 0 turns the limit off.",
    )
    auth_rate_limit_per_minute: int = Field(
        default=20,
        ge=0,
        description="Login and token calls one client address may make per minute; 0 turns the "
        "limit off.",
    )
    hsts_max_age_seconds: int = Field(
        default=0,
        ge=0,
        description="Send Strict-Transport-Security with this max-age (only behind HTTPS, e.g. "
        "31536000); 0 sends none.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins in a row (wrong password or two-factor code) that lock an "
        "account.",
    )
    login_lock_minutes: int = Field(
        default=15, ge=1, description="How long an account stays locked after too many failures."
    )
    password_min_length: int = Field(
        default=12,
        ge=12,
        le=1024,
        description="Shortest password agents may set (12 at least).",
    )
    require_2fa_roles: Annotated[
        list[Literal["admin", "supervisor", "agent", "external"]], NoDecode
    ] = Field(
        default_factory=list,
        description="Roles that must use two-factor login, comma-separated: `admin,supervisor`. "
        "Their agents get a token good only for enrolling until they have. Admins also require "
        "it of single agents (`require_2fa` on the agent).",
    )

    @field_validator("require_2fa_roles", mode="before")
    @classmethod
    def _split_roles(cls, value: object) -> object:
        if isinstance(value, str):
            return [role.strip().lower() for role in value.split(",") if role.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        return async_database_url(value) if value else None

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    _resolved_secret_key: str | None = PrivateAttr(default=None)

    def resolved_secret_key(self) -> str:
        """The secret key; in development one is generated once and kept in the data folder.
        Read once per process: later calls (every mailbox request) touch no file."""
        if self._resolved_secret_key is None:
            self._resolved_secret_key = self._read_secret_key()
        return self._resolved_secret_key

    def _read_secret_key(self) -> str:
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 32:
                raise ConfigurationError("TICKETRY_SECRET_KEY must be at least 32 characters long")
            return value
        if self.environment is Environment.production:
            raise ConfigurationError(
                "TICKETRY_SECRET_KEY is required in production: set it to a long random value, "
                "e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        key_file = self.data_dir / "secret_key"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Created private and exclusively: of two processes starting at once, one writes.
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48))
        return key_file.read_text(encoding="utf-8").strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
