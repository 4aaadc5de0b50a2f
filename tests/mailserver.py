"""A real Dovecot IMAP server for tests: own config, loopback ports, mail store on tmpfs.

Follows /work/shared/MAILSERVERS.md section 3: every path Dovecot would otherwise take from
/etc, /run or /var is set (pitfall D5), users live in a passwd-file with a uid that is neither 0
(D1) nor below ``first_valid_uid`` (D2), and the same class runs as root or rootless.

XOAUTH2/OAUTHBEARER logins go through Dovecot's ``oauth2`` passdb, which asks a small HTTP
token-introspection endpoint run by this class (a stdlib server in a thread) whether a bearer
token is valid and whose it is; tests hand out tokens with :meth:`Dovecot.add_oauth_token`.

The helpers that look at or fill a mailbox (:meth:`append`, :meth:`uids`, :meth:`flags`,
:meth:`add_flags`, :meth:`folder_exists`) use the standard library's blocking ``imaplib``, so
what the tests check does not depend on the client under test. Blocking is fine for test
set-up; call them with ``asyncio.to_thread`` when the test's own client must keep running.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs

from app.ingest.imap import imap_folder_argument

DOVECOT = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
# A mail uid that passes first_valid_uid (D2) and is not root (D1) when Dovecot runs as root;
# no /etc/passwd entry is needed.
_ROOT_MAIL_ID = 1000
_START_TIMEOUT = 10.0
_STOP_GRACE = 3.0
_STOP_TIMEOUT = 10.0
_APPENDUID = re.compile(rb"\[APPENDUID \d+ ([\d:,]+)\]")
_APPEND_BATCH = 500
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class MailUser(NamedTuple):
    address: str
    password: str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, found without connecting.

    A probe connection would make Dovecot start an imap-login process, and one still starting
    up ignores SIGTERM for 5 s: a stop() right after start() would wait for it.
    """
    addresses = {f"0100007F:{port:04X}", f"7F000001:{port:04X}"}  # either byte order
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)  # the header
        return any(
            fields[1] in addresses and fields[3] == "0A"  # 0A: LISTEN
            for fields in (line.split() for line in table)
        )


def _group_running(group: int) -> bool:
    """Whether a process of this process group still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (command) state ppid pgrp ...": the command may contain anything but ")".
            state, _, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == group and state != "Z":
            return True
    return False


def _wait_until_gone(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Wait until the process and its whole group have ended; False if that took too long."""
    deadline = time.monotonic() + seconds
    while process.poll() is None or _group_running(process.pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class _TokenServer:
    """OAuth 2 token introspection (RFC 7662 style) for Dovecot's ``oauth2`` passdb.

    Dovecot POSTs ``token=...`` (``introspection_mode = post``); the answer names the token's
    user when it is known, else says it is inactive.
    """

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests = 0
        tokens = self.tokens
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                server.requests += 1
                user = tokens.get(token)
                body = {"active": True, "username": user} if user else {"active": False}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per login on stderr would drown the test output

        self._http = ThreadingHTTPServer((HOST, 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://{HOST}:{self._http.server_address[1]}/introspect"
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="dovecot-oauth2-introspection", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


class Dovecot:
    """One Dovecot instance; ``with Dovecot() as server: ...`` starts it and cleans up.

    The folder (config, Maildirs, log) and the ports stay the same across :meth:`stop`/
    :meth:`start` and :meth:`restart`, so mail survives and clients can reconnect;
    :meth:`close` stops everything and removes the folder.

    Started from the main thread, the daemon is told to exit when the test process dies, so
    even a killed test run leaves no Dovecot behind.
    """

    def __init__(self, *, parent: Path | None = None) -> None:
        if parent is None:
            shm = Path("/dev/shm")  # noqa: S108 - a parent for mkdtemp, which is safe
            # tmpfs: APPEND is 2-6x faster and steady there than on a disk (MAILSERVERS D6).
            parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.dir = Path(tempfile.mkdtemp(prefix="ticketry-imap-", dir=parent))
        self._rootless = os.geteuid() != 0
        self._mail_uid = os.getuid() if self._rootless else _ROOT_MAIL_ID
        self._mail_gid = os.getgid() if self._rootless else _ROOT_MAIL_ID
        self._port = free_port()
        self._tls_port = free_port()
        self._passwords: dict[str, str] = {}
        self._tokens: _TokenServer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._users_lock = threading.Lock()
        self._prepared = False

    # -- what clients need --------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        """Plain IMAP (STARTTLS offered)."""
        return self._port

    @property
    def tls_port(self) -> int:
        """Implicit-TLS IMAP."""
        return self._tls_port

    @property
    def cafile(self) -> str:
        """The self-signed certificate; trust it with ``ssl.create_default_context(cafile=)``."""
        return str(self.dir / "ssl" / "cert.pem")

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / "dovecot.log"

    @property
    def introspection_requests(self) -> int:
        """How often Dovecot asked the token endpoint: proof that a login went through it."""
        return self._tokens.requests if self._tokens else 0

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the daemon (first call: write config, cert and users file) and wait for it."""
        if self._process is not None and self._process.poll() is None:
            return
        if not self._prepared:
            self._prepare()
        command = [DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")]
        if shutil.which("setpriv") and threading.current_thread() is threading.main_thread():
            # Dovecot gets SIGTERM when the thread that started it ends, even by SIGKILL, so
            # a killed test run cannot leave a daemon behind. Only from the main thread: a
            # worker thread (asyncio.to_thread) may end while the server should go on.
            command = ["setpriv", "--pdeathsig", "TERM", "--", *command]
        with (self.dir / "log" / "stderr.log").open("ab") as stderr:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # a process group of its own, for stop()
            )
        deadline = time.monotonic() + _START_TIMEOUT
        # Both listeners: the master opens them together, but check what tests use.
        while not (_listening(self._port) and _listening(self._tls_port)):
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"Dovecot exited at start:\n{self._diagnostics()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"Dovecot did not listen within {_START_TIMEOUT} s:\n{self._diagnostics()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the daemon and every process it started; keeps the folder and the ports."""
        process, self._process = self._process, None
        if process is None:
            return
        # SIGTERM to the master alone leaves logged-in imap processes serving their clients
        # (seen with 2.3.19), unlike a real restart: signal the whole process group, which
        # start() gave the daemon for itself, and wait until none of it runs. A process
        # that is still starting ignores SIGTERM for seconds; it gets SIGKILL.
        for sig, grace in ((signal.SIGTERM, _STOP_GRACE), (signal.SIGKILL, _STOP_TIMEOUT)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            if _wait_until_gone(process, grace):
                return

    def restart(self) -> None:
        """Stop and start again: every client connection is dropped, the mail is kept."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the daemon and the token endpoint and remove the folder; safe to call twice."""
        try:
            self.stop()
        finally:
            if self._tokens is not None:
                self._tokens.close()
                self._tokens = None
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- users --------------------------------------------------------------------------------

    def add_user(self, address: str, password: str) -> MailUser:
        """Add a mailbox user; returns once the user can log in."""
        if any(c in address + password for c in ":\r\n\x00") or "/" in address:
            raise ValueError("no ':', '/' or line breaks in users: they break the users file")
        if not address or not password:
            raise ValueError("address and password must not be empty")
        home = self.dir / "mail" / address
        line = f"{address}:{{PLAIN}}{password}:{self._mail_uid}:{self._mail_gid}::{home}\n"
        with self._users_lock:
            with (self.dir / "users").open("a", encoding="utf-8") as users:
                users.write(line)
            self._passwords[address] = password
        self._reload()
        # Dovecot's passwd-file is re-read at most once a second (it stats the file only when
        # the clock has moved on since the last lookup), and a reload restarts the auth
        # process asynchronously: so wait until a login works rather than trusting either.
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                with self._imap(address):
                    break
            except imaplib.IMAP4.error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"user {address} cannot log in:\n{self._diagnostics()}"
                    ) from None
                time.sleep(0.05)
        return MailUser(address, password)

    def add_oauth_token(self, user: str, token: str) -> None:
        """Make ``token`` a valid bearer token for ``user`` (who must exist: userdb lookup)."""
        if self._tokens is None:
            raise RuntimeError("start() the server first")
        self._tokens.tokens[token] = user

    # -- looking at mailboxes (independent of the client under test) ---------------------------

    def append(self, user: str, raw: bytes | Iterable[bytes], folder: str = "INBOX") -> list[int]:
        """Store one message or many, in order; returns their UIDs.

        Many go in a few MULTIAPPEND commands with LITERAL+ (both Dovecot has), so thousands
        take a second, not one round trip each. The bytes are stored exactly: IMAP needs CRLF
        line ends (MAILSERVERS A1), so a message with a bare CR or LF is refused.
        """
        messages = [bytes(raw)] if isinstance(raw, bytes | bytearray) else [*map(bytes, raw)]
        for message in messages:
            if _BARE_CR_OR_LF.search(message):
                raise ValueError("message has a bare CR or LF; use CRLF line ends")
        mailbox = imap_folder_argument(folder)
        uids: list[int] = []
        with self._imap(user) as imap:
            if folder.upper() != "INBOX" and not self._exists(imap, mailbox):
                self._check(imap.create(mailbox), "CREATE")
            for start in range(0, len(messages), _APPEND_BATCH):
                uids += self._multiappend(imap, mailbox, messages[start : start + _APPEND_BATCH])
        return uids

    @staticmethod
    def _multiappend(imap: imaplib.IMAP4, mailbox: str, messages: list[bytes]) -> list[int]:
        # imaplib has no MULTIAPPEND; its public send()/readline() carry one by hand.
        command = [b"fixture APPEND ", mailbox.encode("ascii")]
        for message in messages:
            command += [b" {%d+}\r\n" % len(message), message]
        imap.send(b"".join(command) + b"\r\n")
        while not (line := imap.readline()).startswith(b"fixture "):
            if not line:
                raise imaplib.IMAP4.abort("connection closed during APPEND")
        match = _APPENDUID.search(line)
        if not line.startswith(b"fixture OK") or match is None:
            raise imaplib.IMAP4.error(f"APPEND failed: {line!r}")
        uids: list[int] = []
        for part in match.group(1).decode().split(","):
            first, _, last = part.partition(":")
            uids += range(int(first), int(last or first) + 1)
        return uids

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        with self._imap(user) as imap:
            self._check(imap.select(imap_folder_argument(folder), readonly=True), "EXAMINE")
            data = self._check(imap.uid("SEARCH", "ALL"), "UID SEARCH")
            return [int(uid) for uid in (data[0] or b"").split()]

    def flags(self, user: str, uid: int, folder: str = "INBOX") -> set[str]:
        """The message's flags, e.g. ``{"\\\\Seen"}``; raises KeyError when it is not there."""
        with self._imap(user) as imap:
            self._check(imap.select(imap_folder_argument(folder), readonly=True), "EXAMINE")
            data = self._check(imap.uid("FETCH", str(uid), "(FLAGS)"), "UID FETCH")
            for item in data:
                match = _FLAGS.search(item) if isinstance(item, bytes) else None
                if match:
                    return set(match.group(1).decode().split())
            raise KeyError(f"no message with UID {uid} in {folder}")

    def add_flags(self, user: str, uids: Iterable[int], flags: str, folder: str = "INBOX") -> None:
        """Flag messages as another mail client would, e.g. ``add_flags(u, [3], "\\Deleted")``."""
        with self._imap(user) as imap:
            self._check(imap.select(imap_folder_argument(folder)), "SELECT")
            message_set = ",".join(str(uid) for uid in uids)
            self._check(imap.uid("STORE", message_set, "+FLAGS", f"({flags})"), "UID STORE")

    def folder_exists(self, user: str, folder: str) -> bool:
        with self._imap(user) as imap:
            return self._exists(imap, imap_folder_argument(folder))

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4(HOST, self._port, timeout=30)
        try:
            # AUTHENTICATE PLAIN carries UTF-8 passwords; imaplib's LOGIN is ASCII only.
            credentials = f"\0{user}\0{self._passwords[user]}".encode()
            self._check(imap.authenticate("PLAIN", lambda _challenge: credentials), "LOGIN")
            yield imap
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                imap.logout()

    @staticmethod
    def _exists(imap: imaplib.IMAP4, mailbox: str) -> bool:
        data = Dovecot._check(imap.list('""', mailbox), "LIST")
        return any(item for item in data if item)

    @staticmethod
    def _check(reply: tuple[str, Any], command: str) -> list[Any]:
        """imaplib's data of an OK answer, as a list; anything else raises."""
        result, data = reply
        if result != "OK":
            raise imaplib.IMAP4.error(f"{command} failed: {result} {data!r}")
        return data if isinstance(data, list) else [data]

    def _reload(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGHUP)

    def _diagnostics(self) -> str:
        parts = []
        for name in ("stderr.log", "dovecot.log"):
            path = self.dir / "log" / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-30:]
                parts.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    def _prepare(self) -> None:
        d = self.dir
        # mkdtemp made the folder 0700; Dovecot's unprivileged processes (auth reads the users
        # file, imap runs as the mail uid) must get through it.
        d.chmod(0o755)
        for sub in ("run", "state", "log", "ssl", "mail"):
            (d / sub).mkdir(mode=0o755)
        if not self._rootless:
            # As root, the mail processes run as the mail uid and create the homes here.
            os.chown(d / "mail", self._mail_uid, self._mail_gid)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(d / "ssl" / "key.pem"),
                "-out",
                str(d / "ssl" / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
        (d / "users").touch(mode=0o644)
        self._tokens = _TokenServer()
        (d / "oauth2.conf.ext").write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self._tokens.url}\n"
            f"force_introspection = yes\n"
            f"username_attribute = username\n"
            f"active_attribute = active\n"
            f"active_value = true\n"
        )
        (d / "dovecot.conf").write_text(self._config())
        self._prepared = True

    def _config(self) -> str:
        d = self.dir
        config = f"""\
instance_name = ticketry-test-{d.name}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log/dovecot.log
protocols = imap
listen = {HOST}
ssl = yes
ssl_cert = <{d}/ssl/cert.pem
ssl_key = <{d}/ssl/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
# Tests log in wrongly on purpose: no 2 s failure delay, and no penalty per IP. The penalty
# (2 s and more after a failure) has no setting: auth skips it when it cannot reach anvil's
# penalty socket, hence mode 0 below.
auth_failure_delay = 0
auth_verbose = yes
stats_writer_socket_path =
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = optimized
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {d}/users
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self._port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self._tls_port}
    ssl = yes
  }}
}}
"""
        if self._rootless:
            import grp
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            # MAILSERVERS section 3, "Running it without root": no chroots, no user switches.
            config += f"""\
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
service imap-login {{
  chroot =
}}
service anvil {{
  chroot =
}}
service ipc {{
  chroot =
}}
service old-stats {{
  chroot =
}}
service aggregator {{
  chroot =
}}
service auth {{
  user = {user}
}}
"""
        return config
