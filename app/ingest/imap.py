"""The IMAP client the ingestion loop reads mailboxes with, on top of aioimaplib.

aioimaplib 2.0.3 has habits this module exists to contain (see /work/shared/MAILSERVERS.md
section 4):

- a protocol failure is logged, not raised, and the pending command then never completes (A4):
  every call here runs under our own timeout *and* ends as soon as the connection is lost
  (``conn_lost_cb``), as :class:`ImapConnectError`;
- a response of more than ~1000 lines crashes the connection (A7): every command that takes a
  UID list is split into chunks of at most ``batch_size`` (≤ 200) UIDs, and FETCH bodies
  additionally into chunks of at most ``_FETCH_BYTES`` bytes so large mails do not pile up
  in memory;
- STARTTLS and a SASL exchange that needs an answer from the client (the XOAUTH2 error
  challenge) are missing, so they are done here with the library's own protocol object.

One :class:`ImapClient` is one connection, used by one task at a time; after any
:class:`ImapConnectError` or :class:`ImapTimeout` it is finished: close it and connect again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import socket
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import aioimaplib

from app.mailboxes.models import ImapSecurity

__all__ = [
    "FolderInfo",
    "ImapAuthError",
    "ImapClient",
    "ImapConnectError",
    "ImapError",
    "ImapSettings",
    "ImapTimeout",
    "ImapTlsError",
    "imap_folder_argument",
    "uid_set",
]

MAX_BATCH_SIZE: Final = 200
"""Above this many messages per command aioimaplib may crash on the response (bug A7)."""
_FETCH_BYTES: Final = 16 * 1024 * 1024
"""At most this much mail per FETCH (a single bigger mail still comes, alone)."""
_SLOWEST_BYTES_PER_SECOND: Final = 256 * 1024
"""A FETCH may take the timeout plus its size at this rate."""
_LOGOUT_TIMEOUT: Final = 5.0
_T = TypeVar("_T")


class ImapError(Exception):
    """Reading the mailbox failed; the message says what went wrong and what to do next."""


class ImapAuthError(ImapError):
    """The server refused the credentials (password or OAuth token)."""


class ImapConnectError(ImapError):
    """The server could not be reached, refused the connection, or the connection dropped."""


class ImapTlsError(ImapError):
    """The TLS handshake failed, or the server's certificate is not trusted."""


class ImapTimeout(ImapError):
    """The server did not answer in time."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: ImapSecurity
    username: str
    password: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    """When set, log in with AUTHENTICATE XOAUTH2 instead of LOGIN."""
    timeout: float = 30.0
    """Seconds any one command (or connecting) may take."""
    batch_size: int = 100
    """Messages per FETCH/STORE/MOVE/EXPUNGE; at most 200 (aioimaplib bug A7)."""
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    """None: the system's default context (verifies the certificate and the host name)."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.password is None and self.oauth_token is None:
            raise ValueError("either password or oauth_token is needed")


@dataclass(frozen=True)
class FolderInfo:
    uidvalidity: int
    exists: int
    uidnext: int | None


@dataclass(frozen=True)
class _Reply:
    """aioimaplib's untyped ``Response``: the result word and the lines (literals as
    bytearray); the last line is the text of the tagged status response."""

    result: str
    lines: list[bytes | bytearray]

    @property
    def text(self) -> str:
        return bytes(self.lines[-1]).decode(errors="replace") if self.lines else ""


_EXISTS = re.compile(rb"^(\d+) EXISTS$")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_FETCH_LINE = re.compile(rb"^\d+ FETCH \(")
_BODY_LITERAL = re.compile(rb"BODY\[\] \{(\d+)\}$")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_SEARCH_RESULT = re.compile(rb"^[\d ]*$")
_CHANGE_PUSH = re.compile(rb"^\d+ (EXISTS|EXPUNGE)$")


def uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1:3,5,7:8"``: a short command line for any number of UIDs."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("no UIDs")
    ranges: list[str] = []
    start = previous = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        ranges.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(ranges)


def _chunks(uids: Sequence[int], size: int) -> Iterator[list[int]]:
    ordered = sorted(set(uids))
    for index in range(0, len(ordered), size):
        yield ordered[index : index + size]


def imap_folder_argument(name: str) -> str:
    """A folder name as an IMAP argument: modified UTF-7 (RFC 3501 5.1.3), quoted.

    Folder names like ``Behandlet/Løst`` are common in Nordic mailboxes, and an IMAP4rev1
    server only understands them in this encoding.
    """
    parts: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            encoded = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
            parts.append(f"&{encoded}-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            parts.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return str(aioimaplib.quoted("".join(parts)))


class _SaslCommand(aioimaplib.Command):  # type: ignore[misc]
    """AUTHENTICATE with the initial response sent at once (SASL-IR) or on the first ``+``.

    aioimaplib ignores any further ``+`` challenge, but XOAUTH2 uses one to report a bad token
    and then waits for an empty answer before it says NO: without one the login would hang
    until the timeout instead of failing as ImapAuthError.
    """

    def __init__(
        self,
        tag: str,
        mechanism: str,
        initial_response: str,
        write: Callable[[bytes], None],
        *,
        inline: bool,
    ) -> None:
        args = (mechanism, initial_response) if inline else (mechanism,)
        super().__init__("AUTHENTICATE", tag, *args)
        self._write = write
        self._initial: str | None = None if inline else initial_response
        self.challenges: list[bytes] = []

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        if result == "Pending" and line.startswith(b"+"):
            self.challenges.append(line[1:].strip())
            answer, self._initial = self._initial or "", None
            self._write(answer.encode("ascii") + b"\r\n")
            return
        super().append_to_resp(line, result)


class ImapClient:
    """One logged-in IMAP connection; create it with :meth:`connect`."""

    def __init__(self, settings: ImapSettings) -> None:
        self._settings = settings
        self._where = f"{settings.host}:{settings.port}"
        # Set (with the cause, maybe None) once the connection is gone, for whatever reason;
        # every wait races against it.
        self._lost: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._imap: Any = aioimaplib.IMAP4(
            host=settings.host,
            port=settings.port,
            # Our own wait_for is the timeout that counts; the library's must not fire first.
            timeout=settings.timeout + 5,
            conn_lost_cb=self._connection_lost,
            ssl_context=self._ssl_context() if settings.security is ImapSecurity.tls else None,
        )
        self._capabilities: frozenset[str] = frozenset()
        self._folder: str | None = None
        # One command at a time: aioimaplib matches untagged answers to commands by name, so
        # two concurrent callers could receive each other's data.
        self._lock = asyncio.Lock()

    # -- connecting ---------------------------------------------------------------------------

    @classmethod
    async def connect(cls, settings: ImapSettings) -> ImapClient:
        """Connect, check the greeting, STARTTLS when asked, log in."""
        client = cls(settings)
        try:
            await client._open()
        except BaseException:
            client._abort()
            raise
        return client

    async def _open(self) -> None:
        try:
            await self._call(self._imap.wait_hello_from_server(), "connecting")
        except OSError as error:
            raise self._connect_failure(error) from error
        self._read_capabilities()  # aioimaplib asked for them after the greeting
        if self._settings.security is ImapSecurity.starttls:
            await self._starttls()
        if self._settings.oauth_token is not None:
            await self._authenticate_xoauth2(self._settings.oauth_token)
        else:
            await self._login(self._settings.password or "")
        # Capabilities change with login and TLS (RFC 3501 6.2.1, 6.2.2); aioimaplib neither
        # parses the login's own list cleanly nor updates it after AUTHENTICATE, so ask.
        await self._refresh_capabilities()

    def _ssl_context(self) -> ssl.SSLContext:
        return self._settings.ssl_context or ssl.create_default_context()

    def _connect_failure(self, error: OSError) -> ImapError:
        if isinstance(error, ssl.SSLError):
            return self._tls_failure(error)
        # asyncio's message ("Connect call failed (...)") hides the cause its errno names.
        reason = os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
        if isinstance(error, socket.gaierror):
            return ImapConnectError(
                f"cannot resolve the IMAP host {self._settings.host!r} ({reason}); "
                "check the host name of the mailbox"
            )
        return ImapConnectError(
            f"cannot connect to {self._where} ({reason}); check the host and port of the "
            "mailbox and that the server is reachable from here"
        )

    def _tls_failure(self, error: ssl.SSLError) -> ImapTlsError:
        reason = getattr(error, "verify_message", None) or error.reason or str(error)
        if isinstance(error, ssl.SSLCertVerificationError):
            hint = (
                "the server's certificate is not trusted for this host name; fix the "
                "certificate or give the mailbox the CA that issued it"
            )
        else:
            hint = (
                "check that the port speaks TLS (implicit TLS is usually 993; for 143 use "
                "STARTTLS) and that the server's TLS setup is sound"
            )
        return ImapTlsError(f"TLS with {self._where} failed ({reason}); {hint}")

    async def _starttls(self) -> None:
        if "STARTTLS" not in self._capabilities:
            # Never fall back to plain text: the password would travel in clear.
            raise ImapTlsError(
                f"{self._where} does not offer STARTTLS; use implicit TLS (usually port 993) "
                "or, only for a server on this machine, no encryption"
            )
        protocol = self._imap.protocol
        reply = await self._command(
            protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag())), "STARTTLS"
        )
        if reply.result != "OK":
            raise ImapTlsError(f"{self._where} refused STARTTLS: {reply.text}")
        loop = asyncio.get_running_loop()
        try:
            transport = await self._call(
                loop.start_tls(
                    protocol.transport,
                    protocol,
                    self._ssl_context(),
                    server_hostname=self._settings.host,
                ),
                "the TLS handshake",
            )
        except OSError as error:
            raise self._connect_failure(error) from error
        protocol.transport = transport
        await self._refresh_capabilities()

    async def _login(self, password: str) -> None:
        if "LOGINDISABLED" in self._capabilities:
            raise ImapError(
                f"{self._where} refuses passwords on an unencrypted connection; "
                "use STARTTLS or implicit TLS"
            )
        # aioimaplib quotes the password but not the user name.
        response = await self._call(
            self._imap.protocol.login(aioimaplib.quoted(self._settings.username), password),
            "LOGIN",
        )
        self._check_login(_reply(response))

    async def _authenticate_xoauth2(self, token: str) -> None:
        protocol = self._imap.protocol
        if "AUTH=XOAUTH2" not in self._capabilities:
            raise ImapAuthError(
                f"{self._where} does not offer XOAUTH2; use a password for this mailbox"
            )
        sasl = f"user={self._settings.username}\x01auth=Bearer {token}\x01\x01"
        initial = base64.b64encode(sasl.encode()).decode("ascii")
        command = _SaslCommand(
            protocol.new_tag(),
            "XOAUTH2",
            initial,
            protocol.transport.write,
            inline="SASL-IR" in self._capabilities,
        )
        reply = await self._command(protocol.execute(command, scrub=initial), "AUTHENTICATE")
        if reply.result == "OK":
            protocol.state = aioimaplib.AUTH
            return
        detail = ""
        if command.challenges:
            # The error challenge is base64 JSON like {"status":"401","schemes":"bearer",...}.
            with contextlib.suppress(ValueError):
                detail = f" {base64.b64decode(command.challenges[-1]).decode()}"
        self._check_login(reply, detail)

    def _check_login(self, reply: _Reply, detail: str = "") -> None:
        if reply.result == "OK":
            return
        if "[UNAVAILABLE]" in reply.text:
            raise ImapError(
                f"{self._where} cannot log in right now ({reply.text}); try again later"
            )
        what = "OAuth token" if self._settings.oauth_token else "user name or password"
        raise ImapAuthError(
            f"{self._where} refused the login of {self._settings.username!r}: "
            f"{reply.text.rstrip('.')}{detail}; check the {what} of the mailbox"
        )

    async def _refresh_capabilities(self) -> None:
        await self._call(self._imap.protocol.capability(), "CAPABILITY")
        self._read_capabilities()

    def _read_capabilities(self) -> None:
        self._capabilities = frozenset(
            str(capability).upper() for capability in self._imap.protocol.capabilities
        )

    # -- reading ------------------------------------------------------------------------------

    @property
    def supports_idle(self) -> bool:
        return "IDLE" in self._capabilities

    async def select(self, folder: str) -> FolderInfo:
        # Whatever happens, the folder selected before is not any more (RFC 3501 6.3.1).
        self._folder = None
        reply = await self._command(self._imap.select(imap_folder_argument(folder)), "SELECT")
        if reply.result != "OK":
            raise ImapError(
                f"cannot open the folder {folder!r} on {self._where}: {reply.text}; "
                "check the folder names of the mailbox"
            )
        uidvalidity = exists = uidnext = None
        for line in reply.lines:
            if match := _EXISTS.match(line):
                exists = int(match.group(1))
            elif match := _UIDVALIDITY.search(line):
                uidvalidity = int(match.group(1))
            elif match := _UIDNEXT.search(line):
                uidnext = int(match.group(1))
        if uidvalidity is None or exists is None:
            raise ImapError(
                f"{self._where} did not say the UIDVALIDITY or size of {folder!r}; "
                "this server cannot be read safely"
            )
        self._folder = folder
        return FolderInfo(uidvalidity=uidvalidity, exists=exists, uidnext=uidnext)

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` in the selected folder, ascending."""
        self._require_folder()
        # A SEARCH only covers the mail the server has told this session about; a NOOP first
        # makes it catch up with what arrived since the last command.
        self._ok(await self._command(self._imap.noop(), "NOOP"), "NOOP")
        reply = self._ok(
            await self._command(
                self._imap.uid_search(f"UID {last_uid + 1}:*", charset=None), "UID SEARCH"
            ),
            "UID SEARCH",
        )
        found = {
            int(word)
            for line in reply.lines[:-1]
            if _SEARCH_RESULT.match(line)
            for word in line.split()
        }
        # "n:*" always matches the highest UID, even when it is below n (RFC 3501 6.4.8).
        return sorted(uid for uid in found if uid > last_uid)

    async def fetch(self, uids: Sequence[int]) -> AsyncGenerator[tuple[int, bytes]]:
        """``(uid, raw message)`` for each UID still there, ascending; leaves flags alone.

        Bytes are exactly what the server stores (BODY.PEEK[], so \\Seen is not set).
        Messages deleted meanwhile are skipped.
        """
        self._require_folder()
        for chunk in _chunks(uids, self._settings.batch_size):
            for part, size in await self._by_size(chunk):
                # A big part may take longer than one command should; but not forever.
                timeout = self._settings.timeout + size / _SLOWEST_BYTES_PER_SECOND
                reply = self._ok(
                    await self._command(
                        self._imap.uid("fetch", uid_set(part), "(UID BODY.PEEK[])"),
                        "UID FETCH",
                        seconds=timeout,
                    ),
                    "UID FETCH",
                )
                for message in _fetched_bodies(reply.lines):
                    yield message

    async def _by_size(self, uids: list[int]) -> list[tuple[list[int], int]]:
        """``uids`` in parts of at most _FETCH_BYTES of mail, each with its size."""
        reply = self._ok(
            await self._command(
                self._imap.uid("fetch", uid_set(uids), "(UID RFC822.SIZE)"), "UID FETCH"
            ),
            "UID FETCH",
        )
        sizes: dict[int, int] = {}
        for line in reply.lines:
            uid_match, size_match = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
            if _FETCH_LINE.match(line) and uid_match and size_match:
                sizes[int(uid_match.group(1))] = int(size_match.group(1))
        parts: list[tuple[list[int], int]] = []
        for uid in sorted(sizes):
            if not parts or parts[-1][1] + sizes[uid] > _FETCH_BYTES:
                parts.append(([], 0))
            part, total = parts[-1]
            part.append(uid)
            parts[-1] = (part, total + sizes[uid])
        return parts

    # -- changing -----------------------------------------------------------------------------

    async def mark_seen(self, uids: Sequence[int]) -> None:
        await self._store(uids, "\\Seen")

    async def delete(self, uids: Sequence[int]) -> None:
        """Remove exactly these messages (\\Deleted, then UID EXPUNGE of just them).

        Without UIDPLUS they are only flagged \\Deleted: a plain EXPUNGE would also remove
        messages someone else flagged, which is not ours to decide.
        """
        await self._store(uids, "\\Deleted")
        await self._expunge(uids)

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """Move into ``folder``, created when missing; MOVE, else COPY + delete."""
        self._require_folder()
        target = imap_folder_argument(folder)
        verb = "UID MOVE" if "MOVE" in self._capabilities else "UID COPY"
        for chunk in _chunks(uids, self._settings.batch_size):
            messages = uid_set(chunk)
            reply = await self._command(self._transfer(verb, messages, target), verb)
            if reply.result == "NO" and "[TRYCREATE]" in reply.text:
                await self._create(folder, target)
                reply = await self._command(self._transfer(verb, messages, target), verb)
            self._ok(reply, f"{verb} to {folder!r}")
        if verb == "UID COPY":
            await self.delete(uids)

    def _transfer(self, verb: str, messages: str, target: str) -> Awaitable[Any]:
        protocol = self._imap.protocol
        command = protocol.move if verb == "UID MOVE" else protocol.copy
        return cast(Awaitable[Any], command(messages, target, by_uid=True))

    async def _create(self, folder: str, target: str) -> None:
        reply = await self._command(self._imap.create(target), "CREATE")
        # Someone else may have created it since the TRYCREATE; the retry will tell.
        if reply.result != "OK" and "[ALREADYEXISTS]" not in reply.text:
            raise ImapError(
                f"cannot create the folder {folder!r} on {self._where}: {reply.text}; "
                "create it by hand or choose another folder"
            )

    async def _store(self, uids: Sequence[int], flag: str) -> None:
        self._require_folder()
        for chunk in _chunks(uids, self._settings.batch_size):
            # .SILENT: no FETCH line per message comes back.
            self._ok(
                await self._command(
                    self._imap.uid("store", uid_set(chunk), "+FLAGS.SILENT", f"({flag})"),
                    "UID STORE",
                ),
                "UID STORE",
            )

    async def _expunge(self, uids: Sequence[int]) -> None:
        if "UIDPLUS" not in self._capabilities:
            return
        for chunk in _chunks(uids, self._settings.batch_size):
            self._ok(
                await self._command(self._imap.uid("expunge", uid_set(chunk)), "UID EXPUNGE"),
                "UID EXPUNGE",
            )

    # -- waiting ------------------------------------------------------------------------------

    # `timeout` is the agreed interface; it bounds the IDLE, not a single call.
    async def wait_for_changes(self, timeout: float) -> bool:  # noqa: ASYNC109
        """IDLE until the server reports new or removed mail (True) or ``timeout`` (False).

        Dovecot announces a change ~0.5 s after it happens (MAILSERVERS D7).
        """
        if not self.supports_idle:
            raise ImapError(f"{self._where} does not support IDLE; poll the mailbox instead")
        self._require_folder()
        async with self._lock:
            queue: asyncio.Queue[list[bytes]] = self._imap.protocol.idle_queue
            while not queue.empty():  # pushes left over from an earlier IDLE
                queue.get_nowait()
            idle = await self._call(self._imap.idle_start(timeout=timeout), "IDLE")
            try:
                changed = await self._await_change(queue, timeout)
            finally:
                if not self._lost.done():
                    self._imap.idle_done()
            self._ok(_reply(await self._call(idle, "IDLE")), "IDLE")
            return changed

    async def _await_change(self, queue: asyncio.Queue[list[bytes]], seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                pushed = await asyncio.wait_for(self._race(queue.get(), "IDLE"), remaining)
            except TimeoutError:
                return False
            # aioimaplib's own end-of-IDLE marker comes as a line too; it matches nothing here.
            if any(_CHANGE_PUSH.match(line) for line in pushed):
                return True
        return False

    # -- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """LOGOUT when the connection is idle and alive, then close it; never raises."""
        try:
            # Closing must not fail, and the transport is closed below whatever happens.
            with contextlib.suppress(Exception):
                if not self._lost.done() and not self._lock.locked():
                    await asyncio.wait_for(
                        self._race(self._imap.logout(), "LOGOUT"),
                        min(self._settings.timeout, _LOGOUT_TIMEOUT),
                    )
        finally:
            self._abort()

    # -- plumbing -----------------------------------------------------------------------------

    def _connection_lost(self, error: BaseException | None) -> None:
        if not self._lost.done():
            self._lost.set_result(error)

    def _abort(self) -> None:
        transport = getattr(self._imap.protocol, "transport", None)
        if transport is not None:
            transport.close()
        self._connection_lost(ConnectionAbortedError("closed by this client"))

    def _require_folder(self) -> None:
        if self._folder is None:
            raise ImapError("no folder selected; call select() first")

    def _ok(self, reply: _Reply, action: str) -> _Reply:
        if reply.result != "OK":
            raise ImapError(f"{self._where} refused {action}: {reply.text}")
        return reply

    async def _command(
        self, awaitable: Awaitable[Any], action: str, *, seconds: float | None = None
    ) -> _Reply:
        """One command under the lock and the timeout."""
        async with self._lock:
            return _reply(await self._call(awaitable, action, seconds=seconds))

    async def _call(
        self, awaitable: Awaitable[_T], action: str, *, seconds: float | None = None
    ) -> _T:
        """Await under the timeout, ending early with ImapConnectError if the line drops.

        After a timeout the connection is closed: a late answer would otherwise be taken for
        the next command's.
        """
        timeout = self._settings.timeout if seconds is None else seconds
        try:
            return await asyncio.wait_for(self._race(awaitable, action), timeout)
        except TimeoutError as error:
            if self._lost.done():
                raise self._lost_error(action) from error
            self._abort()
            raise ImapTimeout(
                f"{self._where} did not answer {action} within {timeout:g} s; the server or "
                "the network may be slow or down; the next attempt reconnects"
            ) from error
        except aioimaplib.CommandTimeout as error:
            self._abort()
            raise ImapTimeout(
                f"{self._where} stopped sending during {action}; the next attempt reconnects"
            ) from error
        except aioimaplib.AioImapException as error:
            raise ImapError(f"{self._where}: {action} failed: {error}") from error

    async def _race(self, awaitable: Awaitable[_T], action: str) -> _T:
        """``awaitable``'s result, or ImapConnectError as soon as the connection is lost."""
        # Always a task, also when the line is already gone: cancelling it closes the
        # coroutine, which would otherwise be reported as never awaited.
        task = asyncio.ensure_future(awaitable)
        if not self._lost.done():
            waiters: set[asyncio.Future[Any]] = {task, self._lost}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not task.done():
                    task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        task.cancel()
        raise self._lost_error(action)

    def _lost_error(self, action: str) -> ImapConnectError:
        cause = self._lost.result() if self._lost.done() else None
        reason = f" ({cause})" if cause else ""
        return ImapConnectError(
            f"the connection to {self._where} was lost{reason} before {action} finished; "
            "connect again"
        )


def _reply(response: Any) -> _Reply:
    return _Reply(result=str(response.result), lines=list(response.lines))


def _fetched_bodies(lines: list[bytes | bytearray]) -> Iterator[tuple[int, bytes]]:
    """The ``(uid, body)`` pairs in a UID FETCH (UID BODY.PEEK[]) response.

    aioimaplib gives ``b'<seq> FETCH (UID <uid> BODY[] {<size>}'``, the literal as a
    bytearray, then the rest of the item (``b')'``, or ``b' UID <uid>)'`` if the server put
    the UID last); unsolicited FETCH lines (flag changes by others) have no literal.
    """
    for index, line in enumerate(lines):
        if isinstance(line, bytearray) or not _FETCH_LINE.match(line):
            continue
        if not _BODY_LITERAL.search(line) or index + 1 >= len(lines):
            continue
        body = lines[index + 1]
        uid = _FETCH_UID.search(line)
        if uid is None and index + 2 < len(lines):
            uid = _FETCH_UID.search(lines[index + 2])
        if uid is None:
            raise ImapError("the server sent a message without its UID; cannot store it safely")
        yield int(uid.group(1)), bytes(body)
