"""The whole conversation on real servers: a customer's mail in Dovecot becomes a ticket and is
acknowledged, the agent's reply goes out over SMTP, and the customer's answer to it, appended
to Dovecot, comes back into the same ticket. The workers run as `ticketry worker` runs them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import func, select

from app.agents.models import Agent, AgentRole
from app.auth.schemas import Principal
from app.core.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.outbound import service as outbound
from app.outbound.service import OutboundConfig
from app.tickets.models import Message, ThreadMatch, Ticket
from app.tickets.schemas import MessageCreate
from app.workers import run_background_work
from tests.helpers import build_mail
from tests.mailserver import Dovecot, MailUser
from tests.outbound.conftest import make_mailbox
from tests.smtpserver import SmtpSink

SECRET = "roundtrip-secret-" + "x" * 40


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:  # noqa: ASYNC109 - a test deadline
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        await asyncio.sleep(0.1)


async def test_mail_in_acknowledgement_reply_out_and_the_answer_threads_back(
    empty_database_url: str,
    dovecot: Dovecot,
    imap_user: MailUser,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=empty_database_url,
        data_dir=tmp_path,
        secret_key=SECRET,
        mailbox_rescan_seconds=0.3,
        public_base_url="https://support.firma.dk",
    )
    engine = create_engine(empty_database_url, pool_size=10)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    smtp_sink.login = (imap_user.address, imap_user.password)
    await smtp_sink.stop()
    await smtp_sink.start()
    async with maker.begin() as session:
        await make_mailbox(
            session,
            smtp_sink,
            SECRET,
            login=(imap_user.address, imap_user.password),
            imap_host=dovecot.host,
            imap_port=dovecot.port,
        )
        agent = Agent(email="agnete@firma.dk", name="Agnete", role=AgentRole.agent)
        session.add(agent)
    actor = Principal(agent_id=agent.id, label=agent.email, role=agent.role)
    customer = "Søren Ærø <soren@example.dk>"

    async def tickets() -> int:
        async with maker() as session:
            return await session.scalar(select(func.count()).select_from(Ticket)) or 0

    async def received(count: int) -> bool:
        return len(smtp_sink.received) >= count

    stop = asyncio.Event()
    workers = asyncio.create_task(run_background_work(engine, maker, settings, stop))
    try:
        dovecot.append(
            imap_user.address,
            build_mail(sender=customer, to=imap_user.address, message_id="<start@example.dk>"),
        )
        await eventually(lambda: received(1))
        [acknowledgement] = smtp_sink.received
        assert acknowledgement.message["Auto-Submitted"] == "auto-replied"
        assert acknowledgement.recipients == ["soren@example.dk"]

        async with maker.begin() as session:
            ticket = await session.scalar(select(Ticket))
            assert ticket is not None
            ticket_id = ticket.id
            reply = await outbound.post_message(
                session,
                actor,
                ticket_id,
                MessageCreate(body_text="Hej Søren, fakturaen er rettet."),
                OutboundConfig.from_settings(settings),
            )
            reply_id = reply.message_id
        await eventually(lambda: received(2))
        sent = smtp_sink.received[1].message
        assert sent["Message-ID"] == reply_id
        assert sent["In-Reply-To"] == "<start@example.dk>"

        # The customer's client keeps only In-Reply-To and changes the subject.
        dovecot.append(
            imap_user.address,
            build_mail(
                sender=customer,
                to=imap_user.address,
                subject="Tusind tak",
                message_id="<answer@example.dk>",
                headers={"In-Reply-To": str(reply_id)},
            ),
        )

        async def answered() -> bool:
            async with maker() as session:
                found = await session.scalar(
                    select(Message).where(Message.message_id == "<answer@example.dk>")
                )
                return found is not None

        await eventually(answered)
    finally:
        stop.set()
        await asyncio.wait_for(workers, 30)
    async with maker() as session:
        answer = await session.scalar(
            select(Message).where(Message.message_id == "<answer@example.dk>")
        )
        assert answer is not None
        assert answer.ticket_id == ticket_id
        assert answer.threaded_by is ThreadMatch.token
    assert await tickets() == 1
    # An answer to an answer is not acknowledged again.
    assert len(smtp_sink.received) == 2
    await engine.dispose()
