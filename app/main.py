"""The FastAPI application: settings, database lifecycle, middleware, routers, error handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from app import __version__
from app.api.health import router as health_router
from app.api.middleware import RequestContextMiddleware
from app.api.problems import install_problem_handlers
from app.api.v1 import api_v1
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging, get_logger
from app.db.embedded import resolve_database_url
from app.db.session import create_engine, create_sessionmaker
from app.status.router import router as status_router
from app.workers import run_background_work

log = get_logger(__name__)

DESCRIPTION = """
Ticketry turns shared support mailboxes into tickets that are routed, answered and audited.

Authenticate with `Authorization: Bearer <token>`: get a token from `POST /api/v1/auth/login`
(email and password) or `ticketry admin create-token`. Lists are paged with `cursor` and
`limit`; single resources carry an `ETag`, and updates accept `If-Match` (a stale write is
412). Errors are RFC 9457 `application/problem+json`. Timestamps are UTC ISO-8601.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Fail at start, not at first use, when the key is missing.
    await asyncio.to_thread(settings.resolved_secret_key)
    url = await asyncio.to_thread(resolve_database_url, settings)
    engine = create_engine(url, pool_size=settings.db_pool_size)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    stop = asyncio.Event()
    workers: asyncio.Task[None] | None = None
    if app.state.run_workers:
        workers = asyncio.create_task(
            run_background_work(engine, app.state.sessionmaker, settings, stop), name="workers"
        )
    log.info("started", version=__version__, environment=settings.environment.value)
    try:
        yield
    finally:
        # The server has stopped taking requests; workers finish the mail in hand.
        stop.set()
        if workers is not None:
            try:
                await workers
            except Exception:  # the API has stopped already; say why the workers did
                log.exception("workers_failed")
        await engine.dispose()
        log.info("stopped")


def _operation_id(route: APIRoute) -> str:
    """Stable, readable operation ids (``tickets-list_tickets``) for generated clients."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None, *, run_workers: bool = False) -> FastAPI:
    """The API; with ``run_workers`` the same process also reads the mailboxes and sends mail."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="Ticketry",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        generate_unique_id_function=_operation_id,
        max_body_size=settings.max_request_mb * 1024 * 1024,
    )
    app.state.settings = settings
    app.state.run_workers = run_workers
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["ETag", "X-Request-ID", "Location"],
        allow_credentials=False,
    )
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(api_v1)
    app.include_router(status_router)
    return app
