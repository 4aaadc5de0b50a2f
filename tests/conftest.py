"""Test fixtures: a real PostgreSQL, migrated once per run, and a rolled-back transaction per test.

The database is ``TICKETRY_TEST_DATABASE_URL`` when set; otherwise the PostgreSQL on
127.0.0.1:5432 when one answers; otherwise an embedded PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.agents.models import Agent, AgentRole
from app.api.deps import get_session, get_sessionmaker
from app.auth.models import ApiToken
from app.core.config import Environment, Settings, async_database_url
from app.core.security import hash_api_token, hash_password, new_api_token, token_display_prefix
from app.db.embedded import start_embedded_postgres
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine
from app.mailboxes.models import ImapSecurity, Mailbox, MailboxAuth
from app.main import create_app
from tests.mailserver import DOVECOT, Dovecot, MailUser
from tests.smtpserver import SmtpSink

TEST_PASSWORD = "correct horse battery staple"
_PASSWORD_HASH = hash_password(TEST_PASSWORD)


def _local_postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _server_url() -> str:
    configured = os.environ.get("TICKETRY_TEST_DATABASE_URL")
    if configured:
        return async_database_url(configured)
    if _local_postgres_answers():
        return "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    folder = Path(tempfile.mkdtemp(prefix="ticketry-test-pg-"))
    return async_database_url(str(start_embedded_postgres(folder).get_uri()))


async def _connect(server_url: str) -> asyncpg.Connection:
    url = make_url(server_url)
    host = url.host or url.query.get("host")
    return await asyncpg.connect(
        user=url.username, password=url.password, host=host, port=url.port, database=url.database
    )


async def _recreate_database(server_url: str, name: str) -> str:
    url = make_url(server_url)
    connection = await _connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_database(server_url: str, name: str) -> None:
    connection = await _connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A fresh database for this test run, dropped afterwards; runs side by side don't meet."""
    server = _server_url()
    name = f"ticketry_test_{os.getpid()}"
    url = await _recreate_database(server, name)
    yield url
    await _drop_database(server, name)


@pytest.fixture
async def empty_database_url(database_url: str) -> AsyncIterator[str]:
    """An empty database of its own, beside the test database; dropped afterwards."""
    name = f"ticketry_empty_{os.getpid()}"
    url = await _recreate_database(database_url, name)
    yield url
    await _drop_database(database_url, name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    await upgrade_to_head(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection with an outer transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """The session the app and the test share; commits become savepoints."""
    async with AsyncSession(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    ) as session:
        yield session


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment=Environment.development,
        data_dir=tmp_path_factory.mktemp("data"),
        database_url="postgresql://unused@localhost/unused",
        cors_origins=["https://spa.example.test"],
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    """One application for the run: building the routes is slow, and they never change."""
    return create_app(settings)


@pytest.fixture
async def client(
    app: FastAPI, connection: AsyncConnection, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    """Calls the app in-process; every request runs on this test's rolled-back transaction
    (the rate-limit counters too, in savepoints of their own)."""

    async def test_session() -> AsyncIterator[AsyncSession]:
        # What the test set up through `session` is kept even if this request rolls back.
        await session.commit()
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    app.dependency_overrides[get_sessionmaker] = lambda: async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ticketry.test") as c:
            yield c
    finally:
        app.dependency_overrides.pop(get_session, None)
        app.dependency_overrides.pop(get_sessionmaker, None)


@dataclass
class Caller:
    """An agent with a token, ready to make calls (plain values: they survive rollbacks)."""

    id: int
    email: str
    role: AgentRole
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeAgent = Callable[..., Awaitable[Caller]]


@pytest.fixture
def make_agent(session: AsyncSession) -> MakeAgent:
    """``await make_agent("admin", email=..., scopes=[...], **agent_fields)``."""

    async def make(
        role: str | AgentRole = AgentRole.agent,
        *,
        scopes: list[str] | None = None,
        **fields: Any,
    ) -> Caller:
        role = AgentRole(role)
        fields.setdefault("email", f"{role.value}-{uuid.uuid4().hex[:8]}@example.test")
        fields.setdefault("name", f"{role.value.title()} Agent")
        agent = Agent(role=role, password_hash=_PASSWORD_HASH, **fields)
        session.add(agent)
        await session.flush()
        token = new_api_token()
        session.add(
            ApiToken(
                agent_id=agent.id,
                name="test",
                prefix=token_display_prefix(token),
                token_hash=hash_api_token(token),
                scopes=scopes if scopes is not None else ["read", "write"],
            )
        )
        await session.flush()
        return Caller(id=agent.id, email=agent.email, role=role, token=token)

    return make


@pytest.fixture
async def admin(make_agent: MakeAgent) -> Caller:
    return await make_agent(AgentRole.admin)


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    """A real SMTP server on a loopback port for this test, keeping what it accepts."""
    sink = SmtpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot on loopback ports for the whole run; stopped and removed afterwards, also when
    tests fail."""
    if not Path(DOVECOT).exists():
        message = "Dovecot is not installed: apt-get install dovecot-imapd"
        # CI installs it (.ci/run), so missing there is a broken set-up, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Dovecot() as server:
        yield server


@pytest.fixture
def imap_user(dovecot: Dovecot) -> MailUser:
    """A user of its own, so tests never see each other's mail; the password is not ASCII."""
    token = uuid.uuid4().hex[:12]
    return dovecot.add_user(f"support-{token}@example.test", f"blåbær-{token}")


@pytest.fixture
async def sending_mailbox(session: AsyncSession) -> int:
    """The one mailbox that can send, so replies on any ticket are queued for it (nothing is
    sent: no worker runs unless a test starts one)."""
    mailbox = Mailbox(
        name="Udgående",
        imap_host="imap.example.test",
        imap_port=993,
        imap_security=ImapSecurity.tls,
        username="support@example.test",
        auth_method=MailboxAuth.password,
        addresses=["support@example.test"],
        smtp_host="smtp.example.test",
        smtp_port=587,
    )
    session.add(mailbox)
    await session.flush()
    return mailbox.id
