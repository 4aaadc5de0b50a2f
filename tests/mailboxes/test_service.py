"""What the ingestion loop and the sender call: credentials, OAuth refresh, status, folder
state and the sender address."""

from __future__ import annotations

import ssl
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.core import crypto
from app.core.clock import utcnow
from app.ingest.imap import ImapAuthError
from app.mailboxes import service
from app.mailboxes.models import ImapSecurity, Mailbox, MailboxState, MailboxStatus, SmtpSecurity
from app.mailboxes.schemas import MailboxUpdate
from app.outbound.smtp import SmtpFailure
from tests.mailboxes.conftest import SECRET_KEY, MakeMailbox, TokenEndpoint
from tests.mailserver import free_port

OAUTH = {
    "auth_method": "xoauth2",
    "oauth_client_id": "ticketry-app",
    "oauth_client_secret": "klient-hemmelighed",
    "oauth_scope": "IMAP.AccessAsUser.All offline_access",
    "oauth_refresh_token": "gammel-fornyelse",
}


async def _stored(session: AsyncSession, mailbox_id: int) -> Mailbox:
    """The row as the database has it now."""
    mailbox = await session.scalar(
        select(Mailbox).where(Mailbox.id == mailbox_id).execution_options(populate_existing=True)
    )
    assert mailbox is not None
    return mailbox


async def test_password_settings(session: AsyncSession, make_mailbox: MakeMailbox) -> None:
    mailbox = await make_mailbox(
        imap_host="imap.example.test", imap_security="starttls", password="Kodeørd 1"
    )
    context = ssl.create_default_context()
    settings = await service.imap_settings(
        session, mailbox, secret_key=SECRET_KEY, timeout=12.5, batch_size=50, ssl_context=context
    )
    assert (settings.host, settings.port, settings.security) == (
        "imap.example.test",
        143,
        ImapSecurity.starttls,
    )
    assert (settings.username, settings.password, settings.oauth_token) == (
        "støtte@example.test",
        "Kodeørd 1",
        None,
    )
    assert (settings.timeout, settings.batch_size, settings.ssl_context) == (12.5, 50, context)


async def test_a_changed_secret_key_is_an_auth_error_saying_so(
    session: AsyncSession, make_mailbox: MakeMailbox
) -> None:
    mailbox = await make_mailbox(name="Gammel nøgle")
    with pytest.raises(ImapAuthError, match="TICKETRY_SECRET_KEY has changed") as raised:
        await service.imap_settings(
            session, mailbox, secret_key=SECRET_KEY + "-ny", timeout=5, batch_size=10
        )
    assert "Gammel nøgle" in str(raised.value)


async def test_a_fresh_access_token_is_used_as_it_is(
    session: AsyncSession, make_mailbox: MakeMailbox, token_endpoint: TokenEndpoint
) -> None:
    mailbox = await make_mailbox(
        **OAUTH,
        oauth_token_url=token_endpoint.url,
        oauth_access_token="frisk-adgang",
        oauth_access_token_expires_at=utcnow() + timedelta(minutes=30),
    )
    settings = await service.imap_settings(
        session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
    )
    assert (settings.oauth_token, settings.password) == ("frisk-adgang", None)
    assert token_endpoint.requests == []


@pytest.mark.parametrize(
    "expires_in", [timedelta(seconds=-5), timedelta(seconds=30), None], ids=str
)
async def test_an_expiring_or_missing_token_is_refreshed_and_stored(
    session: AsyncSession,
    make_mailbox: MakeMailbox,
    token_endpoint: TokenEndpoint,
    expires_in: timedelta | None,
) -> None:
    fields: dict[str, object] = {**OAUTH, "oauth_token_url": token_endpoint.url}
    if expires_in is not None:
        fields["oauth_access_token"] = "udløbet-adgang"
        fields["oauth_access_token_expires_at"] = utcnow() + expires_in
    mailbox = await make_mailbox(**fields)
    # The reader works with a copy loaded in an earlier transaction.
    session.expunge(mailbox)
    token_endpoint.answer = {
        "access_token": "ny-adgang",
        "token_type": "Bearer",
        "expires_in": 3599,
        "refresh_token": "roteret-fornyelse",
    }

    settings = await service.imap_settings(
        session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
    )
    assert settings.oauth_token == "ny-adgang"
    assert token_endpoint.requests == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "gammel-fornyelse",
            "client_id": "ticketry-app",
            "client_secret": "klient-hemmelighed",
            "scope": "IMAP.AccessAsUser.All offline_access",
        }
    ]

    stored = await _stored(session, mailbox.id)
    assert stored.oauth_access_token_encrypted is not None
    assert stored.oauth_refresh_token_encrypted is not None
    assert crypto.decrypt(SECRET_KEY, stored.oauth_access_token_encrypted) == "ny-adgang"
    assert crypto.decrypt(SECRET_KEY, stored.oauth_refresh_token_encrypted) == ("roteret-fornyelse")
    assert stored.oauth_access_token_expires_at is not None
    remaining = stored.oauth_access_token_expires_at - utcnow()
    assert timedelta(minutes=59) < remaining <= timedelta(seconds=3599)
    # Tokens are no change of the configuration: the reader is not restarted for them.
    assert stored.version == 1

    # The next connection uses the stored token, though its copy of the mailbox is old.
    again = await service.imap_settings(
        session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
    )
    assert again.oauth_token == "ny-adgang"
    assert len(token_endpoint.requests) == 1


async def test_a_refresh_without_rotation_or_lifetime_keeps_the_refresh_token(
    session: AsyncSession, make_mailbox: MakeMailbox, token_endpoint: TokenEndpoint
) -> None:
    mailbox = await make_mailbox(
        auth_method="xoauth2",
        oauth_token_url=token_endpoint.url,
        oauth_refresh_token="eneste-fornyelse",
    )
    token_endpoint.answer = {"access_token": "ny-adgang", "token_type": "Bearer"}
    settings = await service.imap_settings(
        session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
    )
    assert settings.oauth_token == "ny-adgang"
    # Without client id, secret or scope only the grant is sent.
    assert token_endpoint.requests == [
        {"grant_type": "refresh_token", "refresh_token": "eneste-fornyelse"}
    ]
    stored = await _stored(session, mailbox.id)
    assert stored.oauth_refresh_token_encrypted is not None
    assert crypto.decrypt(SECRET_KEY, stored.oauth_refresh_token_encrypted) == "eneste-fornyelse"
    assert stored.oauth_access_token_expires_at is not None
    assert stored.oauth_access_token_expires_at - utcnow() > timedelta(minutes=59)


async def test_a_refused_refresh_is_an_auth_error_with_the_providers_words(
    session: AsyncSession, make_mailbox: MakeMailbox, token_endpoint: TokenEndpoint
) -> None:
    mailbox = await make_mailbox(
        **OAUTH,
        oauth_token_url=token_endpoint.url,
        oauth_access_token="udløbet-adgang",
        oauth_access_token_expires_at=utcnow() - timedelta(hours=1),
    )
    before = await _stored(session, mailbox.id)
    stored_tokens = (before.oauth_access_token_encrypted, before.oauth_refresh_token_encrypted)
    token_endpoint.status = 400
    token_endpoint.answer = {
        "error": "invalid_grant",
        "error_description": "AADSTS70008: The refresh token has expired due to inactivity.",
    }
    with pytest.raises(ImapAuthError) as raised:
        await service.imap_settings(
            session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
        )
    message = str(raised.value)
    assert "HTTP 400" in message
    assert "invalid_grant: AADSTS70008: The refresh token has expired" in message
    assert f"/api/v1/mailboxes/{mailbox.id}/oauth-token" in message
    assert "gammel-fornyelse" not in message
    assert "klient-hemmelighed" not in message
    after = await _stored(session, mailbox.id)
    assert (after.oauth_access_token_encrypted, after.oauth_refresh_token_encrypted) == (
        stored_tokens
    )

    # A 200 without a token is no success either.
    token_endpoint.status, token_endpoint.answer = 200, {"token_type": "Bearer"}
    with pytest.raises(ImapAuthError, match="HTTP 200"):
        await service.imap_settings(
            session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
        )


async def test_an_unreachable_token_endpoint_is_an_auth_error(
    session: AsyncSession, make_mailbox: MakeMailbox
) -> None:
    mailbox = await make_mailbox(**OAUTH, oauth_token_url=f"http://127.0.0.1:{free_port()}/token")
    with pytest.raises(ImapAuthError, match="could not be reached"):
        await service.imap_settings(
            session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
        )


async def test_no_token_and_no_way_to_get_one(
    session: AsyncSession, make_mailbox: MakeMailbox
) -> None:
    mailbox = await make_mailbox(auth_method="xoauth2")
    with pytest.raises(ImapAuthError, match="has no OAuth access token"):
        await service.imap_settings(
            session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
        )
    # An expired token that cannot be refreshed is still tried: the server decides.
    old = await make_mailbox(
        auth_method="xoauth2",
        oauth_access_token="gammel-adgang",
        oauth_access_token_expires_at=utcnow() - timedelta(minutes=1),
    )
    settings = await service.imap_settings(
        session, old, secret_key=SECRET_KEY, timeout=5, batch_size=10
    )
    assert settings.oauth_token == "gammel-adgang"


async def test_status_is_upserted(session: AsyncSession, make_mailbox: MakeMailbox) -> None:
    mailbox = await make_mailbox()

    async def status() -> MailboxStatus:
        row = await session.scalar(
            select(MailboxStatus)
            .where(MailboxStatus.mailbox_id == mailbox.id)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row

    await service.record_failure(session, mailbox.id, "worker-a", "x" * 5000)
    first = await status()
    assert (first.state, first.consecutive_failures, first.reader) == (
        MailboxState.failing,
        1,
        "worker-a",
    )
    assert first.last_error is not None
    assert len(first.last_error) == service.MAX_ERROR_LENGTH
    await service.record_failure(session, mailbox.id, "worker-a", "igen")
    assert (await status()).consecutive_failures == 2
    await service.record_success(session, mailbox.id, "worker-b")
    ok = await status()
    assert (ok.state, ok.consecutive_failures, ok.reader) == (MailboxState.ok, 0, "worker-b")
    assert ok.last_success_at is not None
    await service.record_failure(session, mailbox.id, "worker-b", "igen")
    assert (await status()).consecutive_failures == 1

    # A mailbox deleted while its reader was busy: nothing to record, and no error.
    await service.record_success(session, mailbox.id + 1000, "worker-b")
    await service.record_failure(session, mailbox.id + 1000, "worker-b", "væk")
    await service.save_folder_state(session, mailbox.id + 1000, "INBOX", 1, 1)
    assert await service.folder_state(session, mailbox.id + 1000, "INBOX") == (None, 0)


async def test_folder_state(session: AsyncSession, make_mailbox: MakeMailbox) -> None:
    mailbox = await make_mailbox()
    assert await service.folder_state(session, mailbox.id, "INBOX") == (None, 0)
    await service.save_folder_state(session, mailbox.id, "INBOX", 1700000000, 10)
    await service.save_folder_state(session, mailbox.id, "Ærinder", 5, 3)
    await service.save_folder_state(session, mailbox.id, "INBOX", 1700000000, 42)
    assert await service.folder_state(session, mailbox.id, "INBOX") == (1700000000, 42)
    assert await service.folder_state(session, mailbox.id, "Ærinder") == (5, 3)
    await service.save_folder_state(session, mailbox.id, "INBOX", 1800000000, 0)
    assert await service.folder_state(session, mailbox.id, "INBOX") == (1800000000, 0)


async def test_lookups(session: AsyncSession, make_mailbox: MakeMailbox) -> None:
    first = await make_mailbox(addresses=["støtte@example.dk", "hjælp@example.dk"])
    inactive = await make_mailbox(active=False, addresses=["gammel@example.dk"])
    third = await make_mailbox()

    assert [m.id for m in await service.list_active(session)] == [first.id, third.id]
    assert await service.get(session, inactive.id) is inactive
    assert await service.get(session, third.id + 1000) is None

    found = await service.mailbox_for_address(session, "Hjælp@Example.DK")
    assert found is not None
    assert found.id == first.id
    found_inactive = await service.mailbox_for_address(session, "gammel@example.dk")
    assert found_inactive is not None
    assert found_inactive.id == inactive.id
    assert await service.mailbox_for_address(session, "ukendt@example.dk") is None
    assert await service.mailbox_for_address(session, "ikke en adresse") is None


SMTP = {"smtp_host": "smtp.example.test", "smtp_port": 587}


async def test_smtp_settings_use_the_imap_login_unless_given_their_own(
    session: AsyncSession, make_mailbox: MakeMailbox
) -> None:
    context = ssl.create_default_context()
    shared = await make_mailbox(**SMTP, password="Kodeørd 1")
    settings = await service.smtp_settings(
        session, shared, secret_key=SECRET_KEY, timeout=7.5, ssl_context=context
    )
    assert (settings.host, settings.port, settings.security) == (
        "smtp.example.test",
        587,
        SmtpSecurity.starttls,
    )
    assert (settings.username, settings.password, settings.oauth_token) == (
        "støtte@example.test",
        "Kodeørd 1",
        None,
    )
    assert (settings.timeout, settings.ssl_context) == (7.5, context)

    own = await make_mailbox(
        **SMTP,
        smtp_security="tls",
        smtp_username="afsender@example.test",
        smtp_password="smtp-kodeørd",
    )
    settings = await service.smtp_settings(session, own, secret_key=SECRET_KEY, timeout=5)
    assert (settings.security, settings.username, settings.password) == (
        SmtpSecurity.tls,
        "afsender@example.test",
        "smtp-kodeørd",
    )

    # An own password alone goes with the IMAP login (an app password for sending, say).
    app_password = await make_mailbox(**SMTP, smtp_password="app-kodeord")
    settings = await service.smtp_settings(session, app_password, secret_key=SECRET_KEY, timeout=5)
    assert (settings.username, settings.password) == ("støtte@example.test", "app-kodeord")


async def test_smtp_shares_the_refreshed_oauth_token_with_imap(
    session: AsyncSession, make_mailbox: MakeMailbox, token_endpoint: TokenEndpoint
) -> None:
    mailbox = await make_mailbox(
        **OAUTH,
        **SMTP,
        oauth_token_url=token_endpoint.url,
        oauth_access_token="udløbet-adgang",
        oauth_access_token_expires_at=utcnow() - timedelta(minutes=5),
    )
    session.expunge(mailbox)
    token_endpoint.answer = {"access_token": "ny-adgang", "expires_in": 3600}

    settings = await service.smtp_settings(session, mailbox, secret_key=SECRET_KEY, timeout=5)
    assert (settings.username, settings.oauth_token, settings.password) == (
        "støtte@example.test",
        "ny-adgang",
        None,
    )
    stored = await _stored(session, mailbox.id)
    assert stored.oauth_access_token_encrypted is not None
    assert crypto.decrypt(SECRET_KEY, stored.oauth_access_token_encrypted) == "ny-adgang"
    # Reading the mailbox uses the same token: no second refresh.
    imap = await service.imap_settings(
        session, mailbox, secret_key=SECRET_KEY, timeout=5, batch_size=10
    )
    assert imap.oauth_token == "ny-adgang"
    assert len(token_endpoint.requests) == 1

    # With a password of its own, SMTP logs in with that instead of the token.
    await service.update_mailbox(
        session,
        system_principal("test"),
        mailbox.id,
        MailboxUpdate(smtp_password=SecretStr("smtp-kodeord")),
        None,
        secret_key=SECRET_KEY,
    )
    own = await service.smtp_settings(
        session, await _stored(session, mailbox.id), secret_key=SECRET_KEY, timeout=5
    )
    assert (own.password, own.oauth_token) == ("smtp-kodeord", None)


async def test_smtp_settings_say_what_is_missing(
    session: AsyncSession, make_mailbox: MakeMailbox
) -> None:
    receive_only = await make_mailbox(name="Kun modtager")
    with pytest.raises(SmtpFailure) as raised:
        await service.smtp_settings(session, receive_only, secret_key=SECRET_KEY, timeout=5)
    assert raised.value.permanent is False
    assert "'Kun modtager' has no SMTP server" in raised.value.reason
    assert f"PATCH /api/v1/mailboxes/{receive_only.id} with `smtp_host`" in raised.value.reason

    no_token = await make_mailbox(**SMTP, auth_method="xoauth2")
    with pytest.raises(SmtpFailure, match="has no OAuth access token") as raised:
        await service.smtp_settings(session, no_token, secret_key=SECRET_KEY, timeout=5)
    assert raised.value.permanent is False
    assert f"/api/v1/mailboxes/{no_token.id}/oauth-token" in raised.value.reason

    for fields in ({}, {"smtp_password": "smtp-kodeord"}):
        mailbox = await make_mailbox(**SMTP, **fields)
        with pytest.raises(SmtpFailure, match="TICKETRY_SECRET_KEY has changed"):
            await service.smtp_settings(session, mailbox, secret_key=SECRET_KEY + "-ny", timeout=5)


async def test_sender_address(make_mailbox: MakeMailbox) -> None:
    own = await make_mailbox(
        from_name="Kundeservice Århus",
        from_address="Svar@Example.TEST",
        addresses=["kundeservice@example.test"],
    )
    assert service.sender_address(own) == ("Kundeservice Århus", "svar@example.test")
    first_address = await make_mailbox(addresses=["hjælp@example.test", "støtte@example.test"])
    assert service.sender_address(first_address) == (None, "hjælp@example.test")
    login = await make_mailbox(username="support@example.test")
    assert service.sender_address(login) == (None, "support@example.test")
