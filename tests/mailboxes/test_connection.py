"""POST /mailboxes/{id}/test against a real Dovecot, and the service call behind it."""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.core.clock import utcnow
from app.mailboxes import service
from app.mailboxes.schemas import MailboxTestFailed, MailboxTestPassed
from tests.conftest import Caller
from tests.mailboxes.conftest import SECRET_KEY, MakeMailbox, TokenEndpoint
from tests.mailserver import Dovecot, MailUser, free_port

URL = "/api/v1/mailboxes"
MAIL = b"From: kunde@example.test\r\nTo: support@example.test\r\nSubject: Hej\r\n\r\nTekst\r\n"


@pytest.fixture
def imap_user(dovecot: Dovecot) -> MailUser:
    return dovecot.add_user(f"support-{uuid.uuid4().hex[:8]}@example.test", "rigtigt-kodeord")


async def _test(client: httpx.AsyncClient, admin: Caller, **fields: Any) -> dict[str, Any]:
    """Create a mailbox with ``fields`` and test it through the API."""
    fields.setdefault("name", "Dovecot")
    fields.setdefault("imap_host", "127.0.0.1")
    fields.setdefault("imap_security", "none")
    created = await client.post(URL, headers=admin.headers, json=fields)
    assert created.status_code == 201, created.text
    response = await client.post(f"{URL}/{created.json()['id']}/test", headers=admin.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_ok_lists_each_folder(
    client: httpx.AsyncClient, admin: Caller, dovecot: Dovecot, imap_user: MailUser
) -> None:
    await asyncio.to_thread(dovecot.append, imap_user.address, [MAIL, MAIL])
    await asyncio.to_thread(dovecot.append, imap_user.address, MAIL, "Ærinder")
    result = await _test(
        client,
        admin,
        imap_port=dovecot.port,
        username=imap_user.address,
        password=imap_user.password,
        folders=["INBOX", "Ærinder"],
    )
    assert result["ok"] is True, result
    assert [(f["folder"], f["exists"]) for f in result["folders"]] == [
        ("INBOX", 2),
        ("Ærinder", 1),
    ]
    assert all(
        isinstance(f["uidvalidity"], int) and f["uidvalidity"] > 0 for f in result["folders"]
    )
    assert set(result) == {"ok", "folders"}


async def test_wrong_password(
    client: httpx.AsyncClient, admin: Caller, dovecot: Dovecot, imap_user: MailUser
) -> None:
    result = await _test(
        client,
        admin,
        imap_port=dovecot.port,
        username=imap_user.address,
        password="forkert-kodeord",
    )
    assert result["ok"] is False
    assert result["error_type"] == "auth"
    assert imap_user.address in result["error"]
    assert "`password`" in result["error"]
    assert "forkert-kodeord" not in result["error"]


async def test_unreachable_port(client: httpx.AsyncClient, admin: Caller) -> None:
    port = free_port()
    result = await _test(client, admin, imap_port=port, username="a@example.test", password="p")
    assert result == {"ok": False, "error": result["error"], "error_type": "connect"}
    assert f"127.0.0.1:{port}" in result["error"]
    assert "`imap_port`" in result["error"]


async def test_missing_folder(
    client: httpx.AsyncClient, admin: Caller, dovecot: Dovecot, imap_user: MailUser
) -> None:
    result = await _test(
        client,
        admin,
        imap_port=dovecot.port,
        username=imap_user.address,
        password=imap_user.password,
        folders=["INBOX", "Findes ikke"],
    )
    assert result["ok"] is False
    assert result["error_type"] == "folder"
    assert "'Findes ikke'" in result["error"]
    assert "`folders`" in result["error"]


async def test_an_untrusted_certificate_is_a_tls_error(
    client: httpx.AsyncClient, admin: Caller, dovecot: Dovecot, imap_user: MailUser
) -> None:
    # Dovecot's certificate is self-signed and the service trusts no extra CA here.
    result = await _test(
        client,
        admin,
        imap_security="tls",
        imap_port=dovecot.tls_port,
        username=imap_user.address,
        password=imap_user.password,
    )
    assert result["ok"] is False
    assert result["error_type"] == "tls"
    assert "TICKETRY_IMAP_CA_FILE" in result["error"]


async def test_missing_credentials_are_reported_without_connecting(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    result = await _test(
        client,
        admin,
        imap_port=free_port(),
        username="a@example.test",
        auth_method="xoauth2",
    )
    assert result["ok"] is False
    assert result["error_type"] == "auth"
    assert "oauth-token" in result["error"]


async def test_tls_and_starttls_with_a_trusted_certificate(
    session: AsyncSession, make_mailbox: MakeMailbox, dovecot: Dovecot, imap_user: MailUser
) -> None:
    trusted = ssl.create_default_context(cafile=dovecot.cafile)
    for security, port in (("tls", dovecot.tls_port), ("starttls", dovecot.port)):
        mailbox = await make_mailbox(
            name=security,
            imap_host="127.0.0.1",
            imap_port=port,
            imap_security=security,
            username=imap_user.address,
            password=imap_user.password,
        )
        result = await service.check_connection(
            session,
            system_principal("test"),
            mailbox.id,
            secret_key=SECRET_KEY,
            timeout=10,
            ssl_context=trusted,
        )
        assert isinstance(result, MailboxTestPassed), result


async def test_xoauth2_with_a_refreshed_token(
    session: AsyncSession,
    make_mailbox: MakeMailbox,
    dovecot: Dovecot,
    imap_user: MailUser,
    token_endpoint: TokenEndpoint,
) -> None:
    """The whole chain: an expired token is refreshed at the provider, and Dovecot accepts the
    new one (it asks its own introspection endpoint)."""
    fresh = f"adgang-{uuid.uuid4().hex}"
    dovecot.add_oauth_token(imap_user.address, fresh)
    token_endpoint.answer = {"access_token": fresh, "expires_in": 3600}
    mailbox = await make_mailbox(
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="none",
        username=imap_user.address,
        auth_method="xoauth2",
        oauth_token_url=token_endpoint.url,
        oauth_refresh_token="fornyelse",
        oauth_access_token="udløbet",
        oauth_access_token_expires_at=utcnow() - timedelta(minutes=5),
    )
    result = await service.check_connection(
        session, system_principal("test"), mailbox.id, secret_key=SECRET_KEY, timeout=10
    )
    assert isinstance(result, MailboxTestPassed), result
    assert len(token_endpoint.requests) == 1


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_a_server_that_does_not_answer_is_a_timeout(
    session: AsyncSession, make_mailbox: MakeMailbox, silent_server: int
) -> None:
    mailbox = await make_mailbox(
        imap_host="127.0.0.1", imap_port=silent_server, imap_security="none"
    )
    result = await service.check_connection(
        session, system_principal("test"), mailbox.id, secret_key=SECRET_KEY, timeout=0.5
    )
    assert isinstance(result, MailboxTestFailed)
    assert result.error_type == "timeout"
