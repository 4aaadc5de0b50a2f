"""Fixtures of the mailbox tests: mailboxes made through the service, a real OAuth 2 token
endpoint on loopback, and a real Dovecot."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.mailboxes import service
from app.mailboxes.models import Mailbox
from app.mailboxes.schemas import MailboxCreate
from app.templates.models import Template
from tests.mailserver import Dovecot

SECRET_KEY = "mailbox-tests-secret-key-0123456789-abcdefghij"

MakeMailbox = Callable[..., Awaitable[Mailbox]]


@pytest.fixture
def make_mailbox(session: AsyncSession) -> MakeMailbox:
    """``await make_mailbox(**fields)``: a mailbox made as the system, secrets encrypted with
    ``SECRET_KEY``; a plain password mailbox on imap.example.test unless told otherwise."""
    counter = 0

    async def make(**fields: Any) -> Mailbox:
        nonlocal counter
        counter += 1
        fields.setdefault("name", f"Postkasse {counter}")
        fields.setdefault("imap_host", "imap.example.test")
        fields.setdefault("username", "støtte@example.test")
        if fields.get("auth_method", "password") == "password":
            fields.setdefault("password", "kodeord")
        view = await service.create_mailbox(
            session, system_principal("test"), MailboxCreate(**fields), secret_key=SECRET_KEY
        )
        return view.mailbox

    return make


async def add_template(session: AsyncSession, name: str = "Kvittering") -> int:
    """Insert a template directly (the template API is not what these tests are about)."""
    template = Template(name=name, body="Tak for din henvendelse.")
    session.add(template)
    await session.flush()
    return template.id


@dataclass
class TokenEndpoint:
    """An OAuth 2 token endpoint: records each form POSTed and answers with ``status`` and
    ``answer`` (JSON) — set them to what the provider should say."""

    url: str = ""
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            endpoint.requests.append({key: values[0] for key, values in form.items()})
            data = json.dumps(endpoint.answer).encode()
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/oauth2/token"
    thread = threading.Thread(target=server.serve_forever, name="token-endpoint", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A real Dovecot on loopback ports for the whole run."""
    with Dovecot() as server:
        yield server
