"""Scheduler pass at scale: how long one full pass of the scheduler (SLA breaches and
escalations, the scheduled rules, follow-ups, proactive updates) takes over N open tickets
(default 100,000) that all have a live SLA target.

Seeds a fresh database with SQL as the scheduler would leave it 30 seconds after its last
pass: tickets in every open status, each with a resolution target due between 100 minutes ago
and 65 hours ahead (those breached and those at risk before the last pass already marked and
tagged), some solved for three days, some four hours without an answer. Saves a rule set
with scheduled rules (raise the priority after 4 hours without an answer, tag and notify at
risk, close solved tickets after 3 days) and a rule for new tickets that the pass skips. Then
runs one pass now (what came due in the last 30 seconds fires) and a second one right after
(nothing new). Prints one JSON line: tickets, seconds of each pass and of each part, open
tickets per second, what each part handled, and the process's peak memory.
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
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.schemas import system_principal
from app.core.clock import utcnow
from app.core.config import async_database_url
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.outbound.service import OutboundConfig
from app.routing import service as routing
from app.routing.rules import RuleSetDefinition
from app.scheduler.worker import PassResult, Scheduler, passes
from bench.common import DEFAULT_SERVER, PEOPLE_SEED_SQL, bench_database

SEED_SQL = """
CREATE TEMPORARY TABLE seed AS
SELECT g,
       now() + ((g % 4000) - 100) * interval '1 minute' AS due_at,
       now() - interval '30 seconds' AS last_pass
FROM generate_series(1, $tickets) g;
INSERT INTO tickets (subject, status, priority, channel, queue_id, assignee_id, customer_id,
                     tags, created_at, updated_at, status_changed_at, last_customer_message_at,
                     last_agent_reply_at, sla_due_at, sla_at_risk_at, sla_breached, version)
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
       due_at,
       due_at - interval '9 hours 36 minutes',
       due_at < last_pass,
       1
FROM seed ORDER BY g;
INSERT INTO ticket_sla_targets (ticket_id, metric, target_seconds, started_at, resumed_at,
                                due_at, at_risk_at, breached_at, next_check_at)
SELECT id, 'resolution', 172800, created_at, created_at, sla_due_at, sla_at_risk_at,
       CASE WHEN sla_breached THEN sla_due_at END,
       CASE WHEN sla_breached THEN NULL
            WHEN sla_at_risk_at > now() - interval '30 seconds' THEN sla_at_risk_at
            ELSE sla_due_at END
FROM tickets;
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
    scheduler = Scheduler(maker, passes(CONFIG))
    first = await scheduler.run_once(utcnow())
    second = await scheduler.run_once(utcnow())
    await engine.dispose()
    first_seconds = sum(r.seconds for r in first)
    return {
        "benchmark": "sla",
        "tickets": tickets,
        "seed_seconds": round(seed_seconds, 1),
        "first_pass": _figures(first),
        "second_pass": _figures(second),
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
