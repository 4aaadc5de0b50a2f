"""The ``ticketry`` command, run as people run it: the installed console script, in a subprocess."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.main import get_command
from typer.testing import CliRunner

from app.agents.models import Agent
from app.audit.models import AuditEvent
from app.auth.models import ApiToken
from app.cli import app
from app.db.migrate import head_revision

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_OPENAPI = ROOT / "openapi" / "openapi.json"
TICKETRY = shutil.which("ticketry", path=str(Path(sys.executable).parent)) or shutil.which(
    "ticketry"
)


def cli_env(folder: Path, **settings: str) -> dict[str, str]:
    """The caller's environment minus TICKETRY_*, data in ``folder``, plus ``settings``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TICKETRY_") and name != "DATABASE_URL"
    }
    env["TICKETRY_DATA_DIR"] = str(folder / "data")
    env.update({f"TICKETRY_{name.upper()}": value for name, value in settings.items()})
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``ticketry ARGS`` (in ``cwd``, so no stray .env file is read)."""
    assert TICKETRY, "the `ticketry` script is missing: install the package with `pip install -e .`"
    return subprocess.run(
        [TICKETRY, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda path: " ".join(path) or "ticketry")
def test_every_command_explains_itself(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_console_script_answers_help(tmp_path: Path) -> None:
    result = run_cli("--help", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "api", "migrate", "openapi", "admin"):
        assert command in result.stdout


def test_openapi_check_passes_on_the_committed_file(tmp_path: Path) -> None:
    result = run_cli(
        "openapi",
        "--check",
        "--output",
        str(COMMITTED_OPENAPI),
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_openapi_writes_a_file_that_check_accepts_and_rejects_once_changed(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    output = tmp_path / "contract" / "openapi.json"

    written = run_cli("openapi", "--output", str(output), env=env, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    document = output.read_text(encoding="utf-8")
    assert document.endswith("}\n")
    assert '"openapi": ' in document
    assert run_cli("openapi", "--check", "-o", str(output), env=env, cwd=tmp_path).returncode == 0

    output.write_text(document.replace('"title": "Ticketry"', '"title": "Tampered"'), "utf-8")
    checked = run_cli("openapi", "--check", "-o", str(output), env=env, cwd=tmp_path)
    assert checked.returncode == 1
    assert "run `ticketry openapi`" in checked.stderr
    assert "Traceback" not in checked.stderr
    assert "Tampered" in output.read_text(encoding="utf-8"), "--check must not rewrite the file"


def test_openapi_check_on_a_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.json"
    result = run_cli("openapi", "--check", "-o", str(missing), env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "does not exist: run `ticketry openapi`" in result.stderr


def test_api_refuses_to_start_without_a_database_url(tmp_path: Path) -> None:
    result = run_cli("api", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "TICKETRY_DATABASE_URL" in result.stderr
    assert "share" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "postgres").exists(), "no embedded database was started"


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = cli_env(
        tmp_path, database_url="postgresql://ticketry:hunter2-secret@127.0.0.1:1/ticketry"
    )
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach PostgreSQL at ")
    assert "TICKETRY_DATABASE_URL" in result.stderr
    assert "hunter2-secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_migrate_reports_the_revision(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    result = run_cli("migrate", env=cli_env(tmp_path, database_url=database_url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Database already at the latest migration: {head_revision()}"


@pytest.fixture
async def cli_email(engine: AsyncEngine) -> AsyncIterator[str]:
    """A fresh address; the CLI commits for real, so its agent and tokens are removed after."""
    email = f"cli-{uuid.uuid4().hex[:10]}@example.test"
    yield email
    async with engine.begin() as connection:
        agent_ids = select(Agent.id).where(Agent.email == email).scalar_subquery()
        await connection.execute(delete(ApiToken).where(ApiToken.agent_id.in_(agent_ids)))
        await connection.execute(delete(Agent).where(Agent.email == email))


async def test_admin_creates_an_agent_and_a_token_the_api_accepts(
    cli_email: str,
    database_url: str,
    tmp_path: Path,
    client: httpx.AsyncClient,
    session: AsyncSession,
) -> None:
    env = cli_env(tmp_path, database_url=database_url)

    created = await asyncio.to_thread(
        run_cli,
        *("admin", "create-agent", "--email", cli_email.upper(), "--name", "Cli Admin"),
        *("--role", "admin", "--password-stdin"),
        env=env,
        cwd=tmp_path,
        stdin="a password long enough\n",
    )
    assert created.returncode == 0, created.stderr
    assert cli_email in created.stdout

    issued = await asyncio.to_thread(
        run_cli,
        *("admin", "create-token", "--email", cli_email, "--scopes", "read", "--expires-days", "2"),
        env=env,
        cwd=tmp_path,
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token, "the token alone goes to standard output"
    assert "\n" not in token
    assert "printed only this once" in issued.stderr

    headers = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/v1/agents/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == cli_email
    assert me.json()["role"] == "admin"
    tokens = (await client.get("/api/v1/auth/tokens", headers=headers)).json()
    assert [t["scopes"] for t in tokens] == [["read"]]

    login = await client.post(
        "/api/v1/auth/login", json={"email": cli_email, "password": "a password long enough"}
    )
    assert login.status_code == 201, login.text

    agent_id, token_id = str(me.json()["id"]), str(tokens[0]["id"])
    audited = (
        await session.scalars(
            select(AuditEvent.action)
            .where(
                AuditEvent.actor_label == "cli",
                or_(
                    and_(AuditEvent.entity_type == "agent", AuditEvent.entity_id == agent_id),
                    and_(AuditEvent.entity_type == "api_token", AuditEvent.entity_id == token_id),
                ),
            )
            .order_by(AuditEvent.id)
        )
    ).all()
    assert audited == ["agent.created", "api_token.created"]


async def test_admin_errors_are_one_line_without_traceback(
    cli_email: str, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database_url=database_url)
    create = ("admin", "create-agent", "--email", cli_email, "--name", "Twice", "--role", "agent")

    first = await asyncio.to_thread(run_cli, *create, "--no-password", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = await asyncio.to_thread(run_cli, *create, "--no-password", env=env, cwd=tmp_path)
    no_password = await asyncio.to_thread(run_cli, *create, env=env, cwd=tmp_path)
    short = await asyncio.to_thread(run_cli, *create, "--password", "short", env=env, cwd=tmp_path)
    nobody = await asyncio.to_thread(
        run_cli, "admin", "create-token", "--email", "nobody@example.test", env=env, cwd=tmp_path
    )
    bad_scope = await asyncio.to_thread(
        run_cli,
        "admin",
        "create-token",
        "--email",
        cli_email,
        "--scopes",
        "root",
        env=env,
        cwd=tmp_path,
    )

    for result, expected in (
        (again, "exists already"),
        (no_password, "--password-stdin"),
        (short, "password: String should have at least 12 characters"),
        (nobody, "create it with `ticketry admin create-agent`"),
        (bad_scope, "each scope must be one of read, write"),
    ):
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("error: "), result.stderr
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
