"""``ticketry serve`` for real: embedded PostgreSQL, HTTP on a port, SIGTERM, data kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.test_cli import TICKETRY, cli_env, run_cli

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _log_tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (ended, not yet reaped by its parent) counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@contextmanager
def _serving(folder: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``ticketry serve`` on a free port, once /readyz says 200; killed if the test fails."""
    assert TICKETRY
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [TICKETRY, "serve", "--port", str(port)],
            env=cli_env(folder),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert process.poll() is None, f"serve exited early:\n{_log_tail(log)}"
            assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT}s:\n{_log_tail(log)}"
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield process, base_url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(STOP_TIMEOUT) == 0, f"serve did not stop cleanly:\n{_log_tail(log)}"


def test_serve_runs_on_the_embedded_database_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    pgdata = tmp_path / "data" / "postgres"
    email = "first-admin@example.test"

    with _serving(tmp_path, log) as (process, base_url):
        postmaster_pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}

        created = run_cli(
            *("admin", "create-agent", "--email", email, "--name", "First Admin"),
            *("--role", "admin", "--no-password"),
            env=cli_env(tmp_path),
            cwd=tmp_path,
        )
        assert created.returncode == 0, created.stderr
        assert _alive(postmaster_pid), "a CLI run beside the server must leave PostgreSQL running"

        _stop(process, log)
        assert not (pgdata / "postmaster.pid").exists(), "PostgreSQL was not shut down cleanly"
        assert not _alive(postmaster_pid), "the embedded PostgreSQL still runs"

    with _serving(tmp_path, log) as (process, base_url):
        issued = run_cli(
            "admin", "create-token", "--email", email, env=cli_env(tmp_path), cwd=tmp_path
        )
        assert issued.returncode == 0, issued.stderr
        me = httpx.get(
            f"{base_url}/api/v1/agents/me",
            headers={"Authorization": f"Bearer {issued.stdout.strip()}"},
        )
        assert me.status_code == 200, me.text
        assert me.json()["email"] == email
        assert me.headers["X-Request-ID"]

        _stop(process, log)
        assert not (pgdata / "postmaster.pid").exists()
