"""Two worker processes on one committed database: each ticket of a job is changed once."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from app.agents.models import Agent, AgentRole
from app.audit.models import AuditEvent
from app.auth.schemas import Principal
from app.core.clock import utcnow
from app.core.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.jobs import service
from app.jobs.models import BulkJob, BulkJobItem, BulkJobItemState, BulkJobState
from app.jobs.schemas import BulkTicketChanges, BulkTicketUpdate
from app.jobs.worker import BulkJobWorker
from app.outbound.service import OutboundConfig
from tests.helpers import add_ticket

TICKETS = 30


async def test_two_workers_change_each_ticket_exactly_once(
    empty_database_url: str, settings: Settings
) -> None:
    engine = create_engine(empty_database_url, pool_size=4)
    try:
        await upgrade_to_head(engine)
        maker = create_sessionmaker(engine)
        async with maker.begin() as session:
            agent = Agent(email="bulk@firma.dk", name="Bente", role=AgentRole.agent)
            session.add(agent)
            await session.flush()
            ids = [await add_ticket(session) for _ in range(TICKETS)]
            actor = Principal(agent_id=agent.id, label=agent.email, role=agent.role)
            request = BulkTicketUpdate(
                ticket_ids=ids, changes=BulkTicketChanges(add_tags=["kampagne"])
            )
            job = await service.create_ticket_update(session, actor, request, now=utcnow())
        config = OutboundConfig.from_settings(settings)
        workers = [BulkJobWorker(maker, config, batch_size=3) for _ in range(2)]
        worked = await asyncio.gather(*(w.run_until_idle() for w in workers))

        async with maker() as session:
            items = Counter(
                await session.scalars(select(BulkJobItem.state).where(BulkJobItem.job_id == job.id))
            )
            done = await session.get(BulkJob, job.id)
            audited = Counter(
                await session.scalars(
                    select(AuditEvent.entity_id).where(
                        AuditEvent.action == "ticket.updated",
                        AuditEvent.request_id == f"job-{job.id}",
                    )
                )
            )
            finished = list(
                await session.scalars(
                    select(AuditEvent.after).where(AuditEvent.action == "bulk_job.finished")
                )
            )
    finally:
        await engine.dispose()

    assert sum(worked) == TICKETS
    assert all(worked), "both workers took part"
    assert items == Counter({BulkJobItemState.updated: TICKETS})
    assert audited == Counter({str(ticket_id): 1 for ticket_id in ids})
    assert done is not None
    assert (done.state, done.succeeded, done.unchanged) == (BulkJobState.done, TICKETS, 0)
    assert len(finished) == 1, "the job is ended once"
    assert finished[0]["succeeded"] == TICKETS
