"""The ``ticketry`` command: run the service, migrate, export the API contract, administer.

Heavy modules (the FastAPI app, uvicorn, the services, the embedded PostgreSQL) are imported
inside the commands that need them, so ``--help`` answers at once.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from app.agents.models import AgentRole
from app.auth.schemas import Scope
from app.core.config import ConfigurationError, LogLevel, Settings, get_settings
from app.core.errors import DomainError, NotFound

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from app.auth.schemas import Principal
    from app.scheduler.worker import PassResult

T = TypeVar("T")

DEFAULT_OPENAPI_PATH = Path("openapi/openapi.json")

stderr = Console(stderr=True, soft_wrap=True, highlight=False)


class CommandError(Exception):
    """An expected failure; the message says what to do next. Printed as one line, exit 1."""


def _fail(message: str) -> NoReturn:
    stderr.print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(1)


def _describe_invalid(exc: ValidationError) -> str:
    """One line for a pydantic error; settings errors name the environment variable."""
    is_settings = exc.title == Settings.__name__
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        if is_settings:
            location = f"TICKETRY_{location.upper()}"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return ("invalid settings: " if is_settings else "invalid value: ") + "; ".join(parts)


class _Group(TyperGroup):
    """Turns the errors a user can fix into one clear line instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's Context base class is private (typer._click)
        try:
            return super().invoke(ctx)
        except (CommandError, ConfigurationError, DomainError) as exc:
            _fail(str(exc))
        except ValidationError as exc:
            _fail(_describe_invalid(exc))


app = typer.Typer(
    name="ticketry",
    cls=_Group,
    help=(
        "Ticketry: shared support mailboxes become tickets, routed, answered and audited.\n\n"
        "Settings come from TICKETRY_* environment variables (or a .env file). Without "
        "TICKETRY_DATABASE_URL an embedded PostgreSQL runs in TICKETRY_DATA_DIR (default ./var)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals may hold passwords and database URLs
)


def _command_group(name: str, help_text: str) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode="markdown")
    app.add_typer(group, name=name)
    return group


admin_app = _command_group(
    "admin", "Create agents and API tokens; audited as actor `cli`, like an API call."
)
rules_app = _command_group(
    "rules", "Keep the routing rules in a YAML file (in git): export them, apply a file."
)
scheduler_app = _command_group(
    "scheduler",
    "The scheduler's passes (SLA targets, time-based rules, follow-ups, proactive updates).",
)
audit_app = _command_group("audit", "Check that the audit trail is intact.")
retention_app = _command_group(
    "retention", "Retention per queue: what the pass would anonymise or delete, before it may."
)


# --- settings, logging and the database --------------------------------------------------------


def _load_settings(*, long_running: bool) -> Settings:
    """The settings, with logging configured; one-shot commands only log warnings and worse."""
    from app.core.logging import configure_logging

    settings = get_settings()
    level = settings.log_level
    if not long_running and level is LogLevel.info:
        level = LogLevel.warning
    configure_logging(level)
    return settings


def _resolve_database(settings: Settings) -> str:
    """The configured database URL, or the embedded PostgreSQL's, started now if needed."""
    from app.db.embedded import resolve_database_url

    if settings.database_url:
        return settings.database_url
    pgdata = settings.data_dir.resolve() / "postgres"
    try:
        return resolve_database_url(settings)
    except (subprocess.SubprocessError, OSError) as exc:
        raise CommandError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); see {pgdata / 'log'}, "
            "or set TICKETRY_DATABASE_URL to use a PostgreSQL server"
        ) from exc


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@asynccontextmanager
async def _connected(
    url: str, *, require_migrated: bool, pool_size: int = 1
) -> AsyncIterator[AsyncEngine]:
    """An engine whose database answered; with ``require_migrated``, one at the latest schema."""
    from sqlalchemy.exc import DBAPIError

    from app.db.migrate import current_revision, head_revision
    from app.db.session import create_engine

    engine = create_engine(url, pool_size=pool_size)
    try:
        try:
            current = await current_revision(engine)
        except (OSError, DBAPIError) as exc:
            reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
            raise CommandError(
                f"cannot reach PostgreSQL at {_safe_url(url)} ({reason}): check that it runs "
                "and that TICKETRY_DATABASE_URL is right"
            ) from exc
        head = head_revision()
        if require_migrated and current != head:
            raise CommandError(
                f"the database schema is at migration {current or '(none)'} but this version "
                f"needs {head}: run `ticketry migrate` first"
            )
        yield engine
    finally:
        await engine.dispose()


async def _migrate(url: str) -> tuple[str | None, str | None]:
    from app.db.migrate import current_revision, upgrade_to_head

    async with _connected(url, require_migrated=False) as engine:
        before = await current_revision(engine)
        await upgrade_to_head(engine)
        return before, await current_revision(engine)


def _as_cli(settings: Settings, work: Callable[[AsyncSession, Principal], Awaitable[T]]) -> T:
    """Run ``work`` as the system actor ``cli`` in one transaction, committed when it returns."""
    from app.auth.schemas import system_principal
    from app.db.session import create_sessionmaker

    url = _resolve_database(settings)

    async def run() -> T:
        async with (
            _connected(url, require_migrated=True) as engine,
            create_sessionmaker(engine).begin() as session,
        ):
            return await work(session, system_principal("cli"))

    return asyncio.run(run())


# --- serve and api ---------------------------------------------------------------------------


class _Stopped(BaseException):
    """SIGTERM or SIGINT arrived while uvicorn was not handling signals itself."""


@contextmanager
def _stop_cleanly_on_signals() -> Iterator[None]:
    """Make SIGTERM and Ctrl+C end the process normally, so that ``atexit`` handlers run.

    uvicorn handles both signals while it serves, shuts down gracefully, then raises the signal
    again for the previous handler. With Python's default handler SIGTERM would kill the process
    there, skipping ``atexit`` and so leaving the embedded PostgreSQL running; this handler
    ends the command instead (exit 0). The same holds for a signal during start-up or migration.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped(signum)

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_server(
    host: str | None, port: int | None, *, require_database_url: bool, run_workers: bool
) -> None:
    settings = _load_settings(long_running=True)
    if require_database_url and not settings.database_url:
        raise CommandError(
            "`ticketry api` needs TICKETRY_DATABASE_URL: API replicas must share one PostgreSQL "
            "server (an embedded database would give each replica its own data); "
            "use `ticketry serve` for a single process with the embedded database"
        )
    settings.resolved_secret_key()  # refuse to start without one in production
    with _stop_cleanly_on_signals():
        url = _resolve_database(settings)
        asyncio.run(_migrate(url))

        import uvicorn

        from app.main import create_app

        settings = settings.model_copy(update={"database_url": url})
        config = uvicorn.Config(
            create_app(settings, run_workers=run_workers),
            host=host or settings.host,
            port=port or settings.port,
            log_config=None,  # keep the JSON logging that create_app configured
            access_log=False,  # the app logs each request itself, with its request id
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
        server = uvicorn.Server(config)
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when it cannot bind or load
            raise CommandError(
                f"the server could not start on {config.host}:{config.port}; see the log above"
            ) from exc
        if not server.started:
            raise CommandError("the server did not start; see the log above")


HostOption = Annotated[
    str | None,
    typer.Option(help="Interface to listen on.", show_default="TICKETRY_HOST or 127.0.0.1"),
]
PortOption = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="Port to listen on.", show_default="TICKETRY_PORT or 8000"),
]


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Run Ticketry: migrate the database, then serve the API and read the mailboxes.

    Without TICKETRY_DATABASE_URL an embedded PostgreSQL is started in the data folder and
    stopped, with its data kept, when the server stops. SIGTERM or Ctrl+C stop the server
    gracefully: requests in flight get TICKETRY_SHUTDOWN_GRACE_SECONDS to finish, and mail
    being processed is finished.
    """
    _run_server(host, port, require_database_url=False, run_workers=True)


@app.command()
def api(host: HostOption = None, port: PortOption = None) -> None:
    """Run one API replica, for several behind a load balancer; needs TICKETRY_DATABASE_URL.

    Like `serve`, but refuses the embedded database (replicas must share one PostgreSQL
    server) and reads no mail: run `ticketry worker` processes for that.
    """
    _run_server(host, port, require_database_url=True, run_workers=False)


@app.command()
def worker() -> None:
    """Read the mailboxes and send queued mail, without serving the API.

    Run as many as you like, on as many machines: they share the work through PostgreSQL;
    each mailbox is read by one of them at a time, and each queued mail is sent by one.
    SIGTERM or Ctrl+C let the mail in hand be finished before stopping.
    """
    settings = _load_settings(long_running=True)
    settings.resolved_secret_key()
    with _stop_cleanly_on_signals():
        url = _resolve_database(settings)
        asyncio.run(_run_worker(settings.model_copy(update={"database_url": url})))


async def _run_worker(settings: Settings) -> None:
    from app.db.session import create_sessionmaker
    from app.workers import run_background_work

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    assert settings.database_url is not None
    async with _connected(
        settings.database_url, require_migrated=True, pool_size=settings.db_pool_size
    ) as engine:
        await run_background_work(engine, create_sessionmaker(engine), settings, stop)


# --- migrate and openapi --------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest migration (`serve` and `api` do this too)."""
    settings = _load_settings(long_running=False)
    before, after = asyncio.run(_migrate(_resolve_database(settings)))
    if before == after:
        typer.echo(f"Database already at the latest migration: {after}")
    else:
        typer.echo(f"Database migrated from {before or '(empty)'} to {after} (latest).")


def render_openapi(settings: Settings | None = None) -> str:
    """The API contract as committed in openapi/openapi.json: sorted keys, indent 2, newline."""
    from app.main import create_app

    spec = create_app(settings or get_settings()).openapi()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command()
def openapi(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where the OpenAPI JSON is written or checked.")
    ] = DEFAULT_OPENAPI_PATH,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 when the file differs from the code's API."
        ),
    ] = False,
) -> None:
    """Write the API's OpenAPI document, the contract clients build against."""
    settings = _load_settings(long_running=False)
    document = render_openapi(settings)
    if not check:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(document, encoding="utf-8")
        typer.echo(f"Wrote {output}")
        return
    if not output.exists():
        raise CommandError(f"{output} does not exist: run `ticketry openapi` and commit it")
    committed = output.read_text(encoding="utf-8")
    if committed != document:
        diff = list(
            difflib.unified_diff(
                committed.splitlines(),
                document.splitlines(),
                f"{output} (file)",
                f"{output} (code)",
                lineterm="",
            )
        )
        shown = diff[:60] + ([f"... {len(diff) - 60} more lines"] if len(diff) > 60 else [])
        stderr.print(Text("\n".join(shown)))
        raise CommandError(
            f"{output} differs from the API the code serves: run `ticketry openapi` and commit it"
        )
    typer.echo(f"{output} matches the code.")


# --- admin -------------------------------------------------------------------------------------


def _choose_password(password: str | None, from_stdin: bool, without: bool) -> str | None:
    if sum((password is not None, from_stdin, without)) > 1:
        raise CommandError("choose only one of --password, --password-stdin and --no-password")
    if without:
        return None
    if from_stdin:
        value = sys.stdin.read().rstrip("\r\n")
        if not value:
            raise CommandError("--password-stdin read an empty password from standard input")
        return value
    if password is not None:
        return password
    if sys.stdin.isatty():
        entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return entered
    raise CommandError(
        "no password given and no terminal to ask on: pipe it in with --password-stdin, "
        "or pass --no-password for an agent that only uses API tokens"
    )


@admin_app.command("create-agent")
def create_agent(
    email: Annotated[str, typer.Option(help="Email address the agent logs in with; unique.")],
    name: Annotated[str, typer.Option(help="Name shown to colleagues and customers.")],
    role: Annotated[AgentRole, typer.Option(help="What the agent may do; admin may do all.")],
    password: Annotated[
        str | None,
        typer.Option(
            help="At least 12 characters. Visible in the process list and shell history: "
            "prefer the prompt (asked when omitted on a terminal) or --password-stdin."
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_password: Annotated[
        bool,
        typer.Option(
            "--no-password", help="Create the agent without a password: it can only use tokens."
        ),
    ] = False,
) -> None:
    """Create an agent, the first admin say; `ticketry admin create-token` gives it a token."""
    from app.agents import service as agents
    from app.agents.schemas import AgentCreate

    settings = _load_settings(long_running=False)
    data = AgentCreate(
        email=email,
        name=name,
        role=role,
        password=_choose_password(password, password_stdin, no_password),
    )
    agent = _as_cli(
        settings,
        lambda session, actor: agents.create_agent(
            session, actor, data, password_min_length=settings.password_min_length
        ),
    )
    typer.echo(f"Created {agent.role.value} {agent.email} (agent {agent.id}).")


def _parse_scopes(value: str) -> list[Scope]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    valid = ", ".join(scope.value for scope in Scope)
    try:
        return [Scope(name) for name in names]
    except ValueError as exc:
        raise CommandError(f"--scopes {value!r}: each scope must be one of {valid}") from exc


@admin_app.command("create-token")
def create_token(
    email: Annotated[str, typer.Option(help="Email of the agent the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for, to tell tokens apart.")] = "cli",
    scopes: Annotated[
        str, typer.Option(help="Comma-separated scopes: read, write.")
    ] = "read,write",
    expires_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Days until the token expires.",
            show_default="TICKETRY_TOKEN_DEFAULT_DAYS or 90",
        ),
    ] = None,
) -> None:
    """Create an API token for an agent and print it, once, on standard output.

    Use it as `Authorization: Bearer <token>`. Details go to standard error, so
    `TOKEN=$(ticketry admin create-token --email ...)` captures the token alone.
    """
    from app.agents import service as agents
    from app.auth import service as auth
    from app.auth.schemas import TokenCreate, TokenCreated
    from app.core.clock import utcnow
    from app.core.types import normalise_email

    settings = _load_settings(long_running=False)
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise CommandError(f"--email: {exc}") from exc
    request = TokenCreate(name=name, scopes=_parse_scopes(scopes), expires_in_days=expires_days)

    async def issue(session: AsyncSession, actor: Principal) -> TokenCreated:
        agent = await agents.find_by_email(session, address)
        if agent is None:
            raise NotFound(
                f"no agent has the email {address}: create it with `ticketry admin create-agent`"
            )
        return await auth.create_token(
            session,
            actor,
            request.model_copy(update={"agent_id": agent.id}),
            default_lifetime=timedelta(days=settings.token_default_days),
            now=utcnow(),
        )

    created = _as_cli(settings, issue)
    expires = created.expires_at.date().isoformat() if created.expires_at else "never"
    stderr.print(
        Text(
            f"Token {created.id} ({created.prefix}...) for {address}, scopes "
            f"{','.join(created.scopes)}, expires {expires}. The token is printed only this "
            "once: store it now."
        )
    )
    typer.echo(created.token)


# --- import ---------------------------------------------------------------------------------


@app.command("import")
def import_(
    path: Annotated[
        Path,
        typer.Argument(
            help="A .eml file, an mbox file, a Maildir (cur/, new/, tmp/) or a folder of .eml."
        ),
    ],
) -> None:
    """Import old mail (e.g. the shared mailbox's history) through the ingestion pipeline.

    Each mail becomes a ticket or joins the ticket it answers, exactly as if it had arrived
    now; mail seen before is recognised as a duplicate, and mail that cannot be read is kept
    in quarantine (GET /api/v1/ingest/quarantine). Prints a summary at the end.
    """
    settings = _load_settings(long_running=False)
    url = _resolve_database(settings)
    summary = asyncio.run(_import(settings, url, path))
    typer.echo(
        f"Read {summary.read} mail(s): {summary.new_tickets} new ticket(s), "
        f"{summary.threaded} added to existing tickets, {summary.duplicates} duplicate(s), "
        f"{summary.quarantined} quarantined."
    )
    if summary.quarantined:
        stderr.print("See why with GET /api/v1/ingest/quarantine; retry after a fix.")


async def _import(settings: Settings, url: str, path: Path) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.db.session import create_sessionmaker
    from app.ingest.importer import ImportSourceError, import_mail
    from app.ingest.service import IngestConfig

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Importing {path.name}", total=None)
        async with _connected(url, require_migrated=True) as engine:
            try:
                return await import_mail(
                    create_sessionmaker(engine),
                    path,
                    IngestConfig.from_settings(settings),
                    on_total=lambda total: progress.update(task, total=total),
                    on_progress=lambda summary: progress.update(task, completed=summary.read),
                )
            except ImportSourceError as exc:
                raise CommandError(str(exc)) from exc


# --- rules ------------------------------------------------------------------------------------


@rules_app.command("export")
def rules_export(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """Write the routing rules in force as YAML, to keep and review in git."""
    from app.routing import service as routing

    settings = _load_settings(long_running=False)
    text = _as_cli(settings, routing.export_yaml)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote the rules in force to {output}.", err=True)


@rules_app.command("apply")
def rules_apply(
    file: Annotated[Path, typer.Argument(help="A YAML rule set, as `rules export` writes it.")],
    comment: Annotated[
        str | None, typer.Option(help="Why, kept with the new version and in the audit log.")
    ] = None,
) -> None:
    """Put the rules of a YAML file in force as a new version (checked first: nothing changes
    if any rule is invalid; the same rules again make no new version)."""
    from app.routing import service as routing

    settings = _load_settings(long_running=False)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
    before = _as_cli(settings, routing.get_rules)
    rules = _as_cli(
        settings,
        lambda session, actor: routing.apply_yaml(
            session, actor, text, expected_version=None, comment=comment or f"applied {file.name}"
        ),
    )
    if rules.version == before.version:
        typer.echo(f"The rules in {file} are already in force (version {rules.version}).")
    else:
        typer.echo(f"Rules in force: version {rules.version}, {len(rules.rules)} rule(s).")


# --- audit ------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Seal the settled audit events into the hash chain, then check every link.

    Exits 0 when the chain holds, 1 at the first altered or deleted event (the message says
    which). Prints the chain's head: keep a copy elsewhere to check later heads against.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.audit import service as audit
    from app.core.clock import utcnow

    settings = _load_settings(long_running=False)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("Checking the audit chain", total=None)
        result = _as_cli(
            settings,
            lambda session, actor: audit.verify(
                session,
                actor,
                utcnow(),
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            ),
        )
    broken = result.first_broken
    if broken is not None:
        _fail(
            f"the audit trail is broken at position {broken.position}: {broken.detail} "
            f"({result.checked} link(s) before it hold). Events from there on cannot be trusted: "
            "compare audit_events with a backup and find who changed the database"
        )
    head = f"; head {result.head.position} {result.head.hash}" if result.head else ""
    typer.echo(
        f"Audit trail intact: {result.checked} event(s) checked ({result.redacted} redacted by "
        f"erasure, as recorded), {result.unsealed} not sealed yet (sealed once their "
        f"transactions end){head}."
    )


# --- retention --------------------------------------------------------------------------------


@retention_app.command("preview")
def retention_preview() -> None:
    """Print, per queue with a retention period, how many closed tickets the retention pass
    would anonymise or delete now and the oldest, and whether the policy is confirmed.

    Changes nothing. The pass acts on a queue only once an admin confirmed its policy after
    this preview (`POST /api/v1/retention/queues/{id}/confirm`), and again after any change.
    """
    from app.core.clock import utcnow
    from app.gdpr import retention

    settings = _load_settings(long_running=False)
    report = _as_cli(settings, lambda session, actor: retention.preview(session, actor, utcnow()))
    if not report.queues:
        typer.echo("No queue has a retention period.")
    for queue in report.queues:
        oldest = queue.oldest_closed_at.date().isoformat() if queue.oldest_closed_at else "-"
        state = "confirmed" if queue.confirmed else "NOT confirmed: the pass leaves it alone"
        typer.echo(
            f"{queue.queue_name} (queue {queue.queue_id}): {queue.action.value} after "
            f"{queue.retention_months} months: {queue.tickets} ticket(s) closed before "
            f"{queue.closed_before.date().isoformat()}, oldest {oldest}; {state}"
        )


# --- scheduler --------------------------------------------------------------------------------


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--now: {text!r} is not an ISO 8601 date and time") from exc
    if moment.utcoffset() is None:
        raise CommandError(f"--now: give {text!r} a time zone, e.g. {text}Z or {text}+01:00")
    return moment


@scheduler_app.command("run-once")
def scheduler_run_once(
    now: Annotated[
        str | None,
        typer.Option(
            help="Run as if it were this moment (ISO 8601 with a time zone, e.g. "
            "2026-01-05T09:00:00+01:00), to see what would be due then.",
            show_default="the current time",
        ),
    ] = None,
) -> None:
    """Run each scheduler pass once and say how many items each handled.

    Workers do this every TICKETRY_SCHEDULER_INTERVAL_SECONDS; run it by hand to catch up or
    to check rules. Safe beside running workers: each due item is handled once. A moment in
    the future really acts (rules fire, reminders go): use it on a test database.
    """
    moment = _parse_moment(now) if now is not None else None
    settings = _load_settings(long_running=False)
    url = _resolve_database(settings)
    for result in asyncio.run(_run_scheduler_once(settings, url, moment)):
        typer.echo(f"{result.name}: {result.handled} handled in {result.seconds:.2f} s")


async def _run_scheduler_once(
    settings: Settings, url: str, moment: datetime | None
) -> list[PassResult]:
    from app.db.session import create_sessionmaker
    from app.outbound.service import OutboundConfig
    from app.scheduler.worker import Scheduler, passes

    with stderr.status("Starting the scheduler") as status:
        async with _connected(url, require_migrated=True) as engine:
            scheduler = Scheduler(
                create_sessionmaker(engine), passes(OutboundConfig.from_settings(settings))
            )
            return await scheduler.run_once(
                moment, on_start=lambda name: status.update(f"Running the {name} pass")
            )


def main() -> None:
    app(prog_name="ticketry")


if __name__ == "__main__":
    main()
