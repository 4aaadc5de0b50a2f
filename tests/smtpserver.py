"""A real SMTP server for tests: aiosmtpd on a loopback port, keeping every mail it accepts.

It can be told to ask for a login, to refuse recipients or mail with a given reply, and to be
stopped and started again on the same port (an SMTP server that is down for a while).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    login: tuple[str, str] | None = None
    """Ask for this user name and password (AUTH PLAIN/LOGIN) before taking mail."""
    refuse_recipients: dict[str, str] = field(default_factory=dict)
    """Address -> reply, e.g. ``{"gone@example.test": "550 5.1.1 no such user"}``."""
    data_reply: str | None = None
    """Answer every mail with this instead of 250, e.g. ``"451 4.3.0 try again later"``."""
    hold: asyncio.Event | None = None
    """While set to an unset event, every mail waits in DATA (a slow server) until it is set."""
    in_data: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a mail has reached DATA."""
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a mail in DATA has been answered."""
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        refusal = self.refuse_recipients.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.in_data.set()
        if self.hold is not None:
            await self.hold.wait()
        self.answered.set()
        if self.data_reply is not None:
            return self.data_reply
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw))
        return "250 2.0.0 Ok: queued"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.login is not None
        if isinstance(auth_data, LoginPassword):
            given = (auth_data.login.decode(), auth_data.password.decode())
            return AuthResult(success=given == self.login, handled=False)
        return AuthResult(success=False)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self,
                enable_SMTPUTF8=True,
                auth_require_tls=False,
                auth_required=self.login is not None,
                authenticator=self._authenticate if self.login is not None else None,
            ),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def to(self, address: str) -> list[Received]:
        return [mail for mail in self.received if address in mail.recipients]
