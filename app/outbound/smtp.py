"""Talking to a mailbox's SMTP server: connect, log in, hand over one mail, and say whether a
failure is worth retrying."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

from app.mailboxes.models import SmtpSecurity


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity
    username: str | None
    password: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    timeout: float = 30
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)


class SmtpFailure(Exception):
    """A mail was not handed over. ``permanent``: the server refused it for good (5xx), so
    sending it again cannot help; otherwise (4xx, no connection, timeout) a retry may."""

    def __init__(self, reason: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class Delivery:
    reply: str
    """The server's answer to the mail, e.g. ``250 2.0.0 Ok: queued as 4XyZ``."""
    refused: dict[str, str]
    """Recipients refused while the others were taken: address -> the server's reply."""


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def _failure(error: Exception) -> SmtpFailure:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        replies = "; ".join(f"{r.recipient}: {_reply(r.code, r.message)}" for r in error.recipients)
        permanent = all(r.code >= 500 for r in error.recipients)
        return SmtpFailure(f"every recipient was refused: {replies}", permanent=permanent)
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        return SmtpFailure(
            f"the SMTP server refused the login ({_reply(error.code, error.message)}): "
            "check the mailbox's SMTP user name and password",
            permanent=False,
            code=error.code,
        )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return SmtpFailure(
            f"the SMTP server answered {_reply(error.code, error.message)}",
            permanent=error.code >= 500,
            code=error.code,
        )
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SmtpFailure("the SMTP server did not answer in time", permanent=False)
    if isinstance(error, ssl.SSLError):
        return SmtpFailure(f"TLS with the SMTP server failed: {error}", permanent=False)
    # Connection refused or dropped, DNS: the server may be back later.
    return SmtpFailure(f"could not talk to the SMTP server: {error}", permanent=False)


class SmtpConnection:
    """One logged-in SMTP session; reused for several mails, reopened when it dropped."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self.settings
        context = settings.ssl_context or ssl.create_default_context()
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            timeout=settings.timeout,
            use_tls=settings.security is SmtpSecurity.tls,
            start_tls=settings.security is SmtpSecurity.starttls,
            tls_context=context if settings.security is not SmtpSecurity.none else None,
        )
        await client.connect()
        try:
            if settings.username and settings.oauth_token:
                await client.auth_xoauth2(settings.username, settings.oauth_token)
            elif settings.username and settings.password is not None:
                await client.login(settings.username, settings.password)
        except BaseException:
            client.close()
            raise
        return client

    async def open(self) -> None:
        """Connect and log in now (raises ``SmtpFailure``), e.g. to check the settings."""
        if self._client is None or not self._client.is_connected:
            try:
                self._client = await self._connect()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                raise _failure(error) from error

    async def send(self, mail: EmailMessage, sender: str, recipients: list[str]) -> Delivery:
        """Hand one mail over; raises ``SmtpFailure`` when no recipient took it."""
        await self.open()
        assert self._client is not None
        try:
            refused, reply = await self._client.send_message(
                mail, sender=sender, recipients=recipients
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            if not isinstance(error, aiosmtplib.SMTPResponseException) or error.code == 421:
                self.close()  # the connection is gone or going: reopen for the next mail
            else:
                await self._reset()
            raise _failure(error) from error
        return Delivery(
            reply=reply, refused={a: _reply(r.code, r.message) for a, r in refused.items()}
        )

    async def _reset(self) -> None:
        """After a refused mail the server may still be mid-transaction: start clean."""
        assert self._client is not None
        try:
            await self._client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def quit(self) -> None:
        if self._client is not None and self._client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await self._client.quit()
        self.close()


async def check_login(settings: SmtpSettings) -> None:
    """Connect and log in once; raises ``SmtpFailure`` with what went wrong."""
    connection = SmtpConnection(settings)
    try:
        await connection.open()
    finally:
        await connection.quit()
