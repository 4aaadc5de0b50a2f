"""Scheduler pass at scale: how long one full pass of the scheduler (SLA breaches and
escalations, the scheduled rules, follow-ups, proactive updates) takes over N open tickets
(default 100,000) that all have a live SLA target.

Seeds a fresh database with SQL as the scheduler would leave it 30 seconds after its last
pass: an SLA policy (resolution in 48 hours; at 80 % notify, at 100 % raise the priority and
move the ticket to the supervisors' queue) that every queue, ticket and target names; tickets
in every open status, each with a resolution target due between 100 minutes ago and 65 hours
ahead (those breached and those at risk before the last pass already marked, tagged and their
steps fired), some solved for three days, some four hours without an answer. Saves a rule set
with scheduled rules (raise the priority after 4 hours without an answer, tag and notify at
risk, close solved tickets after 3 days) and a rule for new tickets that the pass skips. Then
runs one pass now (what came due in the last 30 seconds fires) and a second one right after
(nothing new). Prints one JSON line: tickets, seconds of each pass and of each part, open
tickets per second, what each part handled, the breaches and escalations of the SLA part and
the statements it sent, and the process's peak memory.
Usage:
    python bench/sla.py [--tickets 100000] [--database-url postgresql://...]
Without --database-url it uses TICKETRY_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432.
The benchmark creates and drops its own database `ticketry_bench_sla`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.schemas import system_principal
from app.core.clock import utcnow
from app.core.config import async_database_url
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.outbound.service import OutboundConfig
from app.routing import service as routing
from app.routing.rules import RuleSetDefinition
from app.scheduler.worker import PassFunction, PassResult, Scheduler, passes
from bench.common import DEFAULT_SERVER, PEOPLE_SEED_SQL, bench_database

SEED_SQL = """
INSERT INTO sla_policies (name, targets, at_risk_percent, escalations, version)
SELECT 'Guld',
       jsonb_build_object('low', r, 'normal', r, 'high', r, 'urgent', r),
       80,
       jsonb_build_array(
           jsonb_build_object('at_percent', 80, 'actions', jsonb_build_array(
               jsonb_build_object('type', 'notify', 'event', 'sla-at-risk'))),
           jsonb_build_object('at_percent', 100, 'actions', jsonb_build_array(
               jsonb_build_object('type', 'raise_priority'),
               jsonb_build_object('type', 'set_queue', 'queue_id', (SELECT max(id) FROM queues))))),
       1
FROM (SELECT jsonb_build_object('resolution', 2880) AS r) targets;
UPDATE queues SET sla_policy_id = (SELECT id FROM sla_policies);
CREATE TEMPORARY TABLE seed AS
SELECT g,
       now() + ((g % 4000) - 100) * interval '1 minute' AS due_at,
       now() - interval '30 seconds' AS last_pass
FROM generate_series(1, $tickets) g;
INSERT INTO tickets (subject, status, priority, channel, queue_id, assignee_id, customer_id,
                     tags, created_at, updated_at, status_changed_at, last_customer_message_at,
                     last_agent_reply_at, sla_policy_id, sla_due_at, sla_at_risk_at,
                     sla_breached, version)
SELECT 'Sag ' || g,
       (ARRAY['new','open','open','pending','on_hold','solved'])[1 + g % 6]::ticket_status,
       (ARRAY['low','normal','normal','high','urgent'])[1 + g % 5]::ticket_priority,
       'email',
       (SELECT min(id) FROM queues) + g % 10,
       CASE WHEN g % 4 = 0 THEN NULL ELSE (SELECT min(id) FROM agents) + g % 50 END,
       (SELECT min(id) FROM customers) + g % $customers,
       CASE WHEN g % 7 = 0 THEN ARRAY['vip'] ELSE '{}' END,
       now() - (g % 240) * interval '1 hour',
       now() - (g % 24) * interval '1 hour',
       now() - (g % 400) * interval '650 seconds',
       now() - (g % 30) * interval '1 hour',
       now() - (g % 400) * interval '36.1 seconds',
       (SELECT id FROM sla_policies),
       due_at,
       due_at - interval '9 hours 36 minutes',
       due_at < last_pass,
       1
FROM seed ORDER BY g;
INSERT INTO ticket_sla_targets (ticket_id, policy_id, metric, target_seconds, started_at,
                                resumed_at, due_at, at_risk_at, breached_at, escalation_level,
                                next_check_at)
SELECT id, sla_policy_id, 'resolution', 172800, sla_due_at - interval '48 hours',
       sla_due_at - interval '48 hours', sla_due_at, sla_at_risk_at,
       CASE WHEN sla_breached THEN sla_due_at END,
       CASE WHEN sla_breached THEN 2
            WHEN sla_at_risk_at <= now() - interval '30 seconds' THEN 1
            ELSE 0 END,
       CASE WHEN sla_breached THEN NULL
            WHEN sla_at_risk_at > now() - interval '30 seconds' THEN sla_at_risk_at
            ELSE sla_due_at END
FROM tickets;
INSERT INTO ticket_escalations (ticket_id, target_id, step, step_key, at_percent, fired_at,
                                outcome)
SELECT t.ticket_id, t.id, s.step, s.at_percent || ':*', s.at_percent,
       t.started_at + t.target_seconds * s.at_percent / 100 * interval '1 second', ''
FROM ticket_sla_targets t
JOIN (VALUES (0, 80), (1, 100)) AS s (step, at_percent) ON s.step < t.escalation_level;
ANALYZE;
"""
FIRED_SQL = """
INSERT INTO automation_firings (ticket_id, rule_id, rule_set_version, fired_at, status_changed_at)
SELECT id, 'at-risk', 1, now() - interval '30 seconds', status_changed_at FROM tickets
WHERE sla_at_risk_at <= now() - interval '30 seconds' AND NOT sla_breached;
ANALYZE automation_firings;
"""
"""The tickets at risk before the last pass (30 seconds ago) were tagged by it."""

CONFIG = OutboundConfig(
    secret_key="bench-secret-" + "b" * 40,
    public_base_url="https://support.firma.dk",
    ticket_number_prefix="#",
)

RULES = {
    "rules": [
        {
            "id": "no-answer-4h",
            "name": "Four hours without an answer: raise the priority",
            "triggers": ["scheduled"],
            "when": {
                "all": [
                    {"field": "ticket.status", "op": "in", "value": ["new", "open"]},
                    {"field": "ticket.hours_since_agent_reply", "op": "gte", "value": 4},
                ]
            },
            "actions": [{"type": "raise_priority"}],
        },
        {
            "id": "at-risk",
            "name": "At risk: tag and notify",
            "triggers": ["scheduled"],
            "when": {"field": "sla.at_risk", "op": "equals", "value": True},
            "actions": [
                {"type": "add_tags", "tags": ["sla-at-risk"]},
                {"type": "notify", "event": "sla-at-risk"},
            ],
        },
        {
            "id": "close-solved",
            "name": "Close solved tickets after 3 days",
            "triggers": ["scheduled"],
            "when": {
                "all": [
                    {"field": "ticket.status", "op": "equals", "value": "solved"},
                    {"field": "ticket.hours_since_status_changed", "op": "gte", "value": 72},
                ]
            },
            "actions": [{"type": "close"}],
        },
        {
            "id": "vip-new",
            "name": "New tickets of VIP customers are urgent",
            "when": {"field": "customer.vip", "op": "equals", "value": True},
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        },
    ]
}


async def main(tickets: int, server_url: str) -> dict[str, Any]:
    async with bench_database(server_url, "ticketry_bench_sla") as url:
        return await _run(tickets, url)


def _figures(results: list[PassResult]) -> dict[str, Any]:
    return {
        "seconds": round(sum(r.seconds for r in results), 2),
        "parts": {r.name: {"seconds": round(r.seconds, 2), "handled": r.handled} for r in results},
    }


class _QueryCount:
    """Counts the statements the SLA part sends (the other parts' are left out)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count, self.on = 0, False
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += self.on

    def counted(self, run: PassFunction) -> PassFunction:
        async def counting(maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
            self.on = True
            try:
                return await run(maker, now)
            finally:
                self.on = False

        return counting


async def _sla_figures(raw: asyncpg.Connection) -> dict[str, int]:
    """Breaches marked and steps fired so far (the seed's own rows are no events)."""
    rows = await raw.fetch(
        "SELECT type, count(*) FROM events"
        " WHERE type IN ('ticket.sla_breached', 'ticket.escalated') GROUP BY type"
    )
    found = {row[0]: row[1] for row in rows}
    return {
        "breaches": found.get("ticket.sla_breached", 0),
        "escalations": found.get("ticket.escalated", 0),
    }


async def _run(tickets: int, url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=2)
    await upgrade_to_head(engine)
    seeding = time.perf_counter()
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    sql = (
        (PEOPLE_SEED_SQL + SEED_SQL)
        .replace("$customers", str(max(tickets // 10, 1)))
        .replace("$tickets", str(tickets))
    )
    await raw.execute(sql)
    await raw.close()
    seed_seconds = time.perf_counter() - seeding

    maker = create_sessionmaker(engine)
    async with maker.begin() as session:
        await routing.save_rules(
            session,
            system_principal("bench"),
            RuleSetDefinition.model_validate(RULES),
            expected_version=None,
        )
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    await raw.execute(FIRED_SQL)
    await raw.close()
    queries = _QueryCount(engine)
    scheduler = Scheduler(
        maker,
        [(name, queries.counted(run) if name == "sla" else run) for name, run in passes(CONFIG)],
    )
    first = await scheduler.run_once(utcnow())
    first_queries, queries.count = queries.count, 0
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    sla_first = await _sla_figures(raw)
    second = await scheduler.run_once(utcnow())
    sla_second = await _sla_figures(raw)
    await raw.close()
    await engine.dispose()
    first_seconds = sum(r.seconds for r in first)
    sla_handled = next(r.handled for r in first if r.name == "sla")
    return {
        "benchmark": "sla",
        "tickets": tickets,
        "seed_seconds": round(seed_seconds, 1),
        "first_pass": _figures(first),
        "second_pass": _figures(second),
        "sla_first_pass": {
            **sla_first,
            "queries": first_queries,
            "queries_per_target": round(first_queries / max(sla_handled, 1), 1),
        },
        "sla_second_pass": {k: sla_second[k] - sla_first[k] for k in sla_first},
        "tickets_per_second": round(tickets / first_seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    args = parser.parse_args()
    figures = asyncio.run(main(args.tickets, async_database_url(args.database_url)))
    print(json.dumps(figures))
