"""POST /mailboxes/{id}/test against a real Dovecot and a real SMTP server, and the service
call behind it."""

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
from tests.smtpserver import SmtpSink

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
    # No SMTP server: nothing about sending to report.
    assert result["smtp"] is None
    assert set(result) == {"ok", "folders", "smtp"}


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
    assert result == {"ok": False, "error": result["error"], "error_type": "connect", "smtp": None}
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
            smtp_timeout=10,
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
        session,
        system_principal("test"),
        mailbox.id,
        secret_key=SECRET_KEY,
        timeout=10,
        smtp_timeout=10,
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
        session,
        system_principal("test"),
        mailbox.id,
        secret_key=SECRET_KEY,
        timeout=0.5,
        smtp_timeout=0.5,
    )
    assert isinstance(result, MailboxTestFailed)
    assert result.error_type == "timeout"


async def _require_login(sink: SmtpSink, user: str, password: str) -> None:
    sink.login = (user, password)
    await sink.stop()
    await sink.start()


async def test_smtp_login_with_the_imap_credentials(
    client: httpx.AsyncClient,
    admin: Caller,
    dovecot: Dovecot,
    imap_user: MailUser,
    smtp_sink: SmtpSink,
) -> None:
    await _require_login(smtp_sink, imap_user.address, imap_user.password)
    result = await _test(
        client,
        admin,
        imap_port=dovecot.port,
        username=imap_user.address,
        password=imap_user.password,
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_security="none",
    )
    assert result["ok"] is True, result
    assert [f["folder"] for f in result["folders"]] == ["INBOX"]
    assert result["smtp"] == {"ok": True, "error": None}
    # Logging in sends nothing.
    assert smtp_sink.received == []


async def test_smtp_login_with_its_own_credentials(
    client: httpx.AsyncClient, admin: Caller, smtp_sink: SmtpSink
) -> None:
    await _require_login(smtp_sink, "afsender", "smtp-kodeord")
    # Reading fails (nothing listens there), sending is still checked.
    result = await _test(
        client,
        admin,
        imap_port=free_port(),
        username="a@example.test",
        password="p",
        smtp_host="localhost",
        smtp_port=smtp_sink.port,
        smtp_security="none",
        smtp_username="afsender",
        smtp_password="smtp-kodeord",
    )
    assert (result["ok"], result["error_type"]) == (False, "connect")
    assert result["smtp"] == {"ok": True, "error": None}


async def test_smtp_wrong_password(
    session: AsyncSession, make_mailbox: MakeMailbox, smtp_sink: SmtpSink
) -> None:
    await _require_login(smtp_sink, "afsender", "smtp-kodeord")
    mailbox = await make_mailbox(
        imap_host="127.0.0.1",
        imap_port=free_port(),
        imap_security="none",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_security="none",
        smtp_username="afsender",
        smtp_password="forkert-kodeord",
    )
    result = await service.check_connection(
        session,
        system_principal("test"),
        mailbox.id,
        secret_key=SECRET_KEY,
        timeout=5,
        smtp_timeout=2,
    )
    assert result.smtp is not None
    assert result.smtp.ok is False
    assert result.smtp.error is not None
    assert "refused the login (535" in result.smtp.error
    assert "`smtp_username`, `smtp_password`" in result.smtp.error
    assert "forkert-kodeord" not in result.smtp.error


async def test_smtp_server_down(
    client: httpx.AsyncClient, admin: Caller, smtp_sink: SmtpSink
) -> None:
    await smtp_sink.stop()
    result = await _test(
        client,
        admin,
        imap_port=free_port(),
        username="a@example.test",
        password="p",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_security="none",
    )
    smtp = result["smtp"]
    assert smtp["ok"] is False
    assert smtp["error"].startswith("Could not talk to the SMTP server")
    assert f"port {smtp_sink.port}" in smtp["error"]
    assert "`smtp_host`, `smtp_port`, `smtp_security`" in smtp["error"]


async def test_smtp_without_credentials_is_reported_without_connecting(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    result = await _test(
        client,
        admin,
        imap_port=free_port(),
        username="a@example.test",
        auth_method="xoauth2",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_security="none",
    )
    assert result["error_type"] == "auth"
    assert result["smtp"]["ok"] is False
    assert "has no OAuth access token" in result["smtp"]["error"]
