"""End to end: mail into a real Dovecot, read by the ingestion loop, becomes a ticket routed by
the rules in force: queue by the address written to, priority by trigger words, an agent by
skills, and a trace that says why."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import select

from app.agents.models import Agent, AgentRole
from app.auth.schemas import system_principal
from app.core.config import Settings
from app.core.crypto import encrypt
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.ingest.supervisor import IngestSupervisor
from app.mailboxes.models import ImapSecurity, Mailbox, MailboxAuth
from app.queues.models import Queue
from app.routing import service as routing
from app.routing.models import RoutingTrace
from app.tickets.models import Ticket, TicketPriority
from tests.helpers import build_mail
from tests.mailserver import Dovecot, MailUser

SECRET = "routing-secret-" + "x" * 40

RULES = """
business_hours:
  timezone: Europe/Copenhagen
  hours: {mon: ["08:00", "16:00"], tue: ["08:00", "16:00"]}
rules:
  - id: reklamation
    name: Reklamationer til reklamationskøen
    when:
      all:
        - {field: message.recipients, op: equals, value: "reklamation@firma.dk"}
    actions:
      - {type: set_queue, queue_id: QUEUE}
      - {type: assign, strategy: skills, skills: {dansk: 2}}
  - id: akut
    name: Akutte sager
    when:
      field: message.subject
      op: words
      value: ["akut", "brådskande", "kiireellinen"]
    actions:
      - {type: set_priority, priority: urgent}
      - {type: add_tags, tags: [akut]}
"""


async def test_mail_in_dovecot_is_routed_by_the_rules(
    empty_database_url: str, dovecot: Dovecot, imap_user: MailUser, tmp_path: Path
) -> None:
    engine = create_engine(empty_database_url, pool_size=10)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    settings = Settings(
        database_url=empty_database_url,
        data_dir=tmp_path,
        secret_key=SECRET,
        mailbox_rescan_seconds=0.3,
    )
    async with maker.begin() as session:
        queue = Queue(name="Reklamationer")
        unskilled = Agent(email="ole@firma.dk", name="Ole", role=AgentRole.agent, skills={})
        skilled = Agent(
            email="søs@firma.dk", name="Søs Ærø", role=AgentRole.agent, skills={"dansk": 3}
        )
        session.add_all(
            [
                queue,
                unskilled,
                skilled,
                Mailbox(
                    name="Support",
                    imap_host=dovecot.host,
                    imap_port=dovecot.port,
                    imap_security=ImapSecurity.none,
                    username=imap_user.address,
                    auth_method=MailboxAuth.password,
                    password_encrypted=encrypt(SECRET, imap_user.password),
                    addresses=[imap_user.address],
                    acknowledge=False,
                ),
            ]
        )
        await session.flush()
        await routing.apply_yaml(
            session,
            system_principal("test"),
            RULES.replace("QUEUE", str(queue.id)),
            expected_version=None,
            comment="test",
        )
        queue_id, skilled_id = queue.id, skilled.id

    dovecot.append(
        imap_user.address,
        build_mail(
            to="Reklamation <reklamation@firma.dk>",
            subject="AKUT: ødelagt vare",
            message_id="<akut@example.dk>",
        ),
    )
    supervisor = IngestSupervisor(engine, maker, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    deadline = time.monotonic() + 20
    try:
        while True:
            async with maker() as session:
                ticket = await session.scalar(select(Ticket))
            if ticket is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    assert ticket is not None
    assert ticket.queue_id == queue_id
    assert ticket.priority is TicketPriority.urgent
    assert ticket.tags == ["akut"]
    assert ticket.assignee_id == skilled_id
    async with maker() as session:
        trace = await session.scalar(
            select(RoutingTrace).where(RoutingTrace.ticket_id == ticket.id)
        )
    assert trace is not None
    assert trace.trigger == "ticket_created"
    assert trace.rule_set_version == 1
    assert trace.facts["values"]["message.subject"] == "AKUT: ødelagt vare"
    assert "Søs Ærø" in trace.applied[1]["outcome"]
    await engine.dispose()
