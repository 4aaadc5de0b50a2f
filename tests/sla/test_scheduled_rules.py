"""The SLA facts of scheduled rules (time until due on both sides of it, at risk, breached)
as a ticket's first response runs out, with the SLA pass's escalation step moving the ticket
to the supervisors' queue and raising its priority on the way."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.outbound.service import OutboundConfig
from app.queues.models import Queue
from app.scheduler.service import run_automation_pass
from app.sla.scheduler import run_sla_pass
from tests.conftest import Caller
from tests.scheduler.test_automations import hours, put_rules, rule, ticket
from tests.sla.conftest import T0, Clock
from tests.sla.test_targets import make_policy, make_queue, open_ticket


def tagging(rule_id: str, field: str, op: str, value: float | bool) -> dict[str, object]:
    return rule(rule_id, hours(field, op, value), {"type": "add_tags", "tags": [rule_id]})


async def test_sla_facts_of_scheduled_rules_and_an_escalation_to_supervisors(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    admin: Caller,
    settings: Settings,
    clock: Clock,
) -> None:
    supervisors = Queue(name="Supervisorer")
    session.add(supervisors)
    await session.flush()
    policy_id = await make_policy(
        client,
        admin,
        at_risk_percent=80,
        targets={"normal": {"first_response": 60}, "high": {"first_response": 60}},
        escalations=[
            {
                "at_percent": 100,
                "metrics": ["first_response"],
                "actions": [
                    {"type": "set_queue", "queue_id": supervisors.id},
                    {"type": "raise_priority"},
                ],
            }
        ],
    )
    supervisors.sla_policy_id = policy_id
    await session.flush()
    ticket_id = await open_ticket(client, admin, queue_id=await make_queue(session, policy_id))
    await put_rules(
        client,
        admin,
        tagging("due-soon", "sla.hours_until_due", "lte", 0.25),
        tagging("overdue", "sla.hours_until_due", "lt", 0),
        tagging("at-risk", "sla.at_risk", "equals", True),
        tagging("breached", "sla.breached", "equals", True),
    )
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    config = OutboundConfig.from_settings(settings)

    async def tick(minutes: int) -> tuple[int, int]:
        now = T0 + timedelta(minutes=minutes)
        return (
            await run_sla_pass(maker, now, config=config),
            await run_automation_pass(maker, now, config=config),
        )

    # Due at 60, at risk from 48: 20 minutes before the due time nothing holds yet.
    assert await tick(40) == (0, 0)
    assert (await ticket(client, admin, ticket_id))["tags"] == []

    assert await tick(50) == (0, 2)
    assert (await ticket(client, admin, ticket_id))["tags"] == ["at-risk", "due-soon"]

    assert await tick(61) == (1, 2)
    escalated = await ticket(client, admin, ticket_id)
    assert escalated["tags"] == ["at-risk", "breached", "due-soon", "overdue"]
    assert escalated["queue_id"] == supervisors.id
    assert escalated["priority"] == "high"
    assert [t["breached"] for t in escalated["sla"]] == [True]
