"""The IMAP client against a real Dovecot (tests/mailserver.py): what ingestion relies on."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest

from app.ingest.imap import (
    FolderInfo,
    ImapAuthError,
    ImapClient,
    ImapConnectError,
    ImapError,
    ImapSettings,
    ImapTimeout,
    ImapTlsError,
    imap_folder_argument,
    uid_set,
)
from app.mailboxes.models import ImapSecurity
from tests.mailserver import Dovecot, MailUser, free_port

MAIL = b"From: kunde@example.dk\r\nTo: support@example.test\r\nSubject: Hej\r\n\r\nTekst\r\n"


def nordic_mails() -> list[bytes]:
    """Mails as they come from Nordic senders: 8-bit UTF-8, quoted-printable, Latin-1 bytes
    that are not UTF-8, an encoded file name; all with CRLF line ends (MAILSERVERS A1)."""
    plain = EmailMessage(policy=SMTP)
    plain["From"] = "Søren Ærø <soren@example.dk>"
    plain["To"] = "support@example.test"
    plain["Subject"] = "Faktura for januar – blåbærsyltetøj"
    plain.set_content("Hej!\n\nJeg har betalt for meget: 1.250,00 kr.\nMvh Søren Ærø\n", cte="8bit")

    printable = EmailMessage(policy=SMTP)
    printable["From"] = "Åsa Öberg <asa@example.se>"
    printable["Subject"] = "Räkning – fel belopp"
    printable.set_content("Hälsningar från Göteborg: åäö ÅÄÖ\n", cte="quoted-printable")
    printable.add_attachment(
        "Kvittering ÆØÅ".encode(), maintype="text", subtype="plain", filename="kvittering-æøå.txt"
    )

    latin1 = (
        b"From: =?iso-8859-1?q?J=F8rgen?= <jorgen@example.no>\r\n"
        b"Subject: =?iso-8859-1?q?Sp=F8rsm=E5l?=\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n" + "Hilsen fra Tromsø: æøå ÆØÅ\r\n".encode("latin-1")
    )
    return [plain.as_bytes(), printable.as_bytes(), latin1]


def settings(dovecot: Dovecot, user: MailUser, **changes: Any) -> ImapSettings:
    values: dict[str, Any] = {
        "host": dovecot.host,
        "port": dovecot.port,
        "security": ImapSecurity.none,
        "username": user.address,
        "password": user.password,
        "timeout": 10.0,
    }
    return ImapSettings(**(values | changes))


def trusted(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=dovecot.cafile)


@pytest.fixture
async def client(dovecot: Dovecot, imap_user: MailUser) -> AsyncIterator[ImapClient]:
    imap = await ImapClient.connect(settings(dovecot, imap_user))
    yield imap
    await imap.close()


@pytest.fixture
def no_greeting_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and then says nothing."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# -- connecting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("security", [ImapSecurity.none, ImapSecurity.tls, ImapSecurity.starttls])
async def test_connects_logs_in_and_selects(
    dovecot: Dovecot, imap_user: MailUser, security: ImapSecurity
) -> None:
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, [MAIL, MAIL])
    port = dovecot.tls_port if security is ImapSecurity.tls else dovecot.port
    client = await ImapClient.connect(
        settings(dovecot, imap_user, port=port, security=security, ssl_context=trusted(dovecot))
    )
    try:
        info = await client.select("INBOX")
        assert info.exists == 2
        assert info.uidvalidity > 0
        assert info.uidnext == uids[-1] + 1
        assert client.supports_idle
    finally:
        await client.close()


async def test_wrong_password_is_an_auth_error(dovecot: Dovecot, imap_user: MailUser) -> None:
    with pytest.raises(ImapAuthError, match=r"AUTHENTICATIONFAILED.*check the user name"):
        await ImapClient.connect(settings(dovecot, imap_user, password="forkert"))


async def test_closed_port_is_a_connect_error(dovecot: Dovecot, imap_user: MailUser) -> None:
    with pytest.raises(ImapConnectError, match="refused"):
        await ImapClient.connect(settings(dovecot, imap_user, port=free_port()))


async def test_connection_closed_before_the_greeting_is_a_connect_error(
    dovecot: Dovecot, imap_user: MailUser
) -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ImapConnectError, match="lost"):
            await ImapClient.connect(settings(dovecot, imap_user, port=port))
        assert loop.time() - started < 5  # not the 10 s timeout: the loss ends the wait
    finally:
        server.close()
        await server.wait_closed()


async def test_silent_server_is_a_timeout(
    dovecot: Dovecot, imap_user: MailUser, no_greeting_port: int
) -> None:
    with pytest.raises(ImapTimeout, match=r"within 0\.5 s"):
        await ImapClient.connect(settings(dovecot, imap_user, port=no_greeting_port, timeout=0.5))


async def test_tls_to_a_plain_port_is_a_tls_error(dovecot: Dovecot, imap_user: MailUser) -> None:
    with pytest.raises(ImapTlsError, match="check that the port speaks TLS"):
        await ImapClient.connect(
            settings(dovecot, imap_user, security=ImapSecurity.tls, ssl_context=trusted(dovecot))
        )


@pytest.mark.parametrize("security", [ImapSecurity.tls, ImapSecurity.starttls])
async def test_untrusted_certificate_is_a_tls_error(
    dovecot: Dovecot, imap_user: MailUser, security: ImapSecurity
) -> None:
    # The system's default context does not know the fixture's self-signed certificate.
    port = dovecot.tls_port if security is ImapSecurity.tls else dovecot.port
    with pytest.raises(ImapTlsError, match="certificate"):
        await ImapClient.connect(settings(dovecot, imap_user, port=port, security=security))


async def test_xoauth2_with_a_valid_token_logs_in(dovecot: Dovecot, imap_user: MailUser) -> None:
    dovecot.add_oauth_token(imap_user.address, "gyldig-token-1")
    asked = dovecot.introspection_requests
    client = await ImapClient.connect(
        settings(dovecot, imap_user, password=None, oauth_token="gyldig-token-1")
    )
    try:
        assert (await client.select("INBOX")).exists == 0
    finally:
        await client.close()
    # Dovecot's oauth2 passdb really asked the introspection endpoint.
    assert dovecot.introspection_requests > asked


@pytest.mark.parametrize("token", ["ukendt-token", "token-of-another-user"])
async def test_xoauth2_with_a_bad_token_is_an_auth_error(
    dovecot: Dovecot, imap_user: MailUser, token: str
) -> None:
    other = dovecot.add_user(f"other-{imap_user.address}", "x")
    dovecot.add_oauth_token(other.address, "token-of-another-user")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ImapAuthError, match="check the OAuth token"):
        await ImapClient.connect(settings(dovecot, imap_user, password=None, oauth_token=token))
    # Failed at once: the client answered the server's error challenge instead of hanging.
    assert loop.time() - started < 5


# -- reading ------------------------------------------------------------------------------------


async def test_select_of_a_missing_folder_says_so(client: ImapClient) -> None:
    with pytest.raises(ImapError, match="cannot open the folder 'Findes ikke'") as raised:
        await client.select("Findes ikke")
    assert type(raised.value) is ImapError
    assert isinstance(await client.select("INBOX"), FolderInfo)  # the connection lives on


async def test_uids_after(dovecot: Dovecot, imap_user: MailUser, client: ImapClient) -> None:
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, [MAIL] * 3)
    await client.select("INBOX")
    assert await client.uids_after(0) == uids
    assert await client.uids_after(uids[0]) == uids[1:]
    # "n:*" with n above every UID still matches the highest one; it must not come back.
    assert await client.uids_after(uids[-1]) == []
    assert await client.uids_after(uids[-1] + 100) == []


async def test_fetch_is_byte_identical_and_leaves_mail_unseen(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient
) -> None:
    mails = nordic_mails()
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, mails)
    await client.select("INBOX")

    fetched = [item async for item in client.fetch(uids)]

    assert fetched == list(zip(uids, mails, strict=True))
    for uid in uids:
        assert "\\Seen" not in await asyncio.to_thread(dovecot.flags, imap_user.address, uid)


async def test_fetch_skips_mail_deleted_meanwhile(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient
) -> None:
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, [MAIL] * 3)
    await client.select("INBOX")
    await client.delete([uids[1]])
    assert [uid async for uid, _ in client.fetch(uids)] == [uids[0], uids[2]]


async def test_three_thousand_mails_come_in_batches_without_hanging(
    dovecot: Dovecot, imap_user: MailUser
) -> None:
    # One FETCH of ~1000 mails would crash aioimaplib's parser and hang (MAILSERVERS A7);
    # batches of at most 200 and the short command timeout turn any such hang into a failure.
    mails = [
        f"From: kunde{n}@example.dk\r\nSubject: Sag {n} – æøå\r\n\r\nBesked nummer {n}\r\n".encode()
        for n in range(3000)
    ]
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, mails)
    client = await ImapClient.connect(settings(dovecot, imap_user, batch_size=200))
    try:
        async with asyncio.timeout(120):
            await client.select("INBOX")
            assert await client.uids_after(0) == uids
            fetched = [item async for item in client.fetch(uids)]
            assert fetched == list(zip(uids, mails, strict=True))

            # STORE and EXPUNGE answer per message too: they are split the same way.
            await client.mark_seen(uids)
            assert "\\Seen" in await asyncio.to_thread(dovecot.flags, imap_user.address, uids[-1])
            await client.delete(uids)
            assert await asyncio.to_thread(dovecot.uids, imap_user.address) == []
    finally:
        await client.close()


# -- telling the server what was done ----------------------------------------------------------


async def test_mark_seen(dovecot: Dovecot, imap_user: MailUser, client: ImapClient) -> None:
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, [MAIL] * 3)
    await client.select("INBOX")
    await client.mark_seen([uids[0], uids[2]])
    seen = [
        "\\Seen" in await asyncio.to_thread(dovecot.flags, imap_user.address, uid) for uid in uids
    ]
    assert seen == [True, False, True]


@pytest.mark.parametrize("server_has_move", [True, False])
async def test_move_creates_the_folder(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient, server_has_move: bool
) -> None:
    folder = "Behandlet – Løst"
    mails = nordic_mails()
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, mails)
    await client.select("INBOX")
    if not server_has_move:
        # Dovecot always has MOVE; hide it to take the COPY + \Deleted + UID EXPUNGE way.
        client._capabilities -= {"MOVE"}
    assert not await asyncio.to_thread(dovecot.folder_exists, imap_user.address, folder)

    await client.move(uids[:2], folder)

    assert await asyncio.to_thread(dovecot.folder_exists, imap_user.address, folder)
    assert await asyncio.to_thread(dovecot.uids, imap_user.address) == uids[2:]
    moved = await asyncio.to_thread(dovecot.uids, imap_user.address, folder)
    assert len(moved) == 2
    info = await client.select(folder)
    assert info.exists == 2
    assert [raw async for _, raw in client.fetch(moved)] == mails[:2]


async def test_delete_removes_only_those_mails(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient
) -> None:
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, [MAIL] * 4)
    # Another mail client flagged one for deletion; expunging it is not ours to decide.
    await asyncio.to_thread(dovecot.add_flags, imap_user.address, [uids[3]], "\\Deleted")
    await client.select("INBOX")

    await client.delete([uids[0], uids[2]])

    assert await asyncio.to_thread(dovecot.uids, imap_user.address) == [uids[1], uids[3]]


# -- waiting for mail ---------------------------------------------------------------------------


async def test_wait_for_changes_sees_new_mail(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient
) -> None:
    await client.select("INBOX")

    async def deliver_soon() -> list[int]:
        await asyncio.sleep(0.2)
        return await asyncio.to_thread(dovecot.append, imap_user.address, MAIL)

    loop = asyncio.get_running_loop()
    started = loop.time()
    delivery = asyncio.ensure_future(deliver_soon())
    changed = await client.wait_for_changes(10)
    waited = loop.time() - started

    assert changed
    assert waited < 2.5  # Dovecot announces after ~0.5 s (MAILSERVERS D7), not at the timeout
    assert await client.uids_after(0) == await delivery


async def test_wait_for_changes_times_out_and_the_connection_lives_on(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient
) -> None:
    await client.select("INBOX")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await client.wait_for_changes(1.0)
    assert 0.9 < loop.time() - started < 3
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, MAIL)
    assert await client.uids_after(0) == uids


async def test_cancelled_wait_leaves_the_connection_usable(
    dovecot: Dovecot, imap_user: MailUser, client: ImapClient
) -> None:
    # The reader cancels the wait when it is told to stop, then may still talk or close.
    await client.select("INBOX")
    waiting = asyncio.ensure_future(client.wait_for_changes(30))
    await asyncio.sleep(0.3)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, MAIL)
    assert await client.uids_after(0) == uids


# -- the server goes away -----------------------------------------------------------------------


async def test_restarted_server_is_a_connect_error_then_reconnecting_works(
    dovecot: Dovecot, imap_user: MailUser
) -> None:
    uids = await asyncio.to_thread(dovecot.append, imap_user.address, MAIL)
    client = await ImapClient.connect(settings(dovecot, imap_user))
    first = await client.select("INBOX")
    try:
        # Blocking on purpose: the client cannot notice anything until the restart is over.
        dovecot.restart()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ImapConnectError, match="connect again"):
            await client.uids_after(0)
        assert loop.time() - started < 2  # not the 10 s timeout
    finally:
        dovecot.start()  # in case the restart failed half-way
        await client.close()  # never raises, even on a dead connection

    again = await ImapClient.connect(settings(dovecot, imap_user))
    try:
        assert await again.select("INBOX") == first
        assert await again.uids_after(0) == uids
    finally:
        await again.close()


async def test_restart_during_wait_for_changes_ends_the_wait(
    dovecot: Dovecot, imap_user: MailUser
) -> None:
    client = await ImapClient.connect(settings(dovecot, imap_user))
    try:
        await client.select("INBOX")
        waiting = asyncio.ensure_future(client.wait_for_changes(30))
        await asyncio.sleep(0.3)
        dovecot.restart()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ImapConnectError):
            await waiting
        assert loop.time() - started < 2
    finally:
        dovecot.start()
        await client.close()


# -- small parts --------------------------------------------------------------------------------


def test_uid_set_compresses_ranges() -> None:
    assert uid_set([5, 1, 2, 3, 7, 8, 3]) == "1:3,5,7:8"
    assert uid_set([42]) == "42"
    with pytest.raises(ValueError, match="no UIDs"):
        uid_set([])


def test_folder_names_are_modified_utf7_and_quoted() -> None:
    assert imap_folder_argument("INBOX") == '"INBOX"'
    assert imap_folder_argument("Behandlet/Løst") == '"Behandlet/L&APg-st"'
    # RFC 3501 section 5.1.3's own example.
    assert imap_folder_argument("~peter/mail/台北/日本語") == '"~peter/mail/&U,BTFw-/&ZeVnLIqe-"'
    assert imap_folder_argument('A&B "x"') == '"A&-B \\"x\\""'


def test_settings_refuse_batches_aioimaplib_cannot_take() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ImapSettings("h", 993, ImapSecurity.tls, "u", password="p", batch_size=201)


def test_settings_keep_secrets_out_of_repr() -> None:
    text = repr(ImapSettings("h", 993, ImapSecurity.tls, "u", password="hemmelig"))
    assert "hemmelig" not in text
