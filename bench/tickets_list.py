"""Ticket list latency at scale: seeds N tickets (default 1,000,000) into a fresh database and
times the list queries the API runs (filters, sorts, deep cursor pages).

Prints one JSON line. Usage:
    python bench/tickets_list.py [--tickets 1000000] [--database-url postgresql://...]
Without --database-url it uses TICKETRY_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432.
The benchmark creates and drops its own database `ticketry_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.schemas import system_principal
from app.core.config import async_database_url
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.tickets import service
from app.tickets.models import TicketPriority, TicketStatus
from app.tickets.schemas import TicketFilters, TicketSort
from bench.common import DEFAULT_SERVER, PEOPLE_SEED_SQL, bench_database

SEED_SQL = """
INSERT INTO tickets (subject, status, priority, channel, queue_id, assignee_id, customer_id,
                     tags, created_at, updated_at, version)
SELECT 'Sag ' || g,
       (ARRAY['new','open','pending','on_hold','solved','closed'])[1 + floor(random() * 6)::int]
           ::ticket_status,
       (ARRAY['low','normal','normal','high','urgent'])[1 + floor(random() * 5)::int]
           ::ticket_priority,
       'email',
       (SELECT min(id) FROM queues) + g % 10,
       CASE WHEN g % 4 = 0 THEN NULL ELSE (SELECT min(id) FROM agents) + g % 50 END,
       (SELECT min(id) FROM customers) + g % $customers,
       CASE WHEN g % 7 = 0 THEN ARRAY['vip'] WHEN g % 3 = 0 THEN ARRAY['faktura'] ELSE '{}' END,
       now() - (g || ' seconds')::interval,
       now() - ((g % 100000) || ' seconds')::interval,
       1
FROM generate_series(1, $tickets) g;
ANALYZE;
"""


async def _timed(call: Callable[[], Awaitable[object]], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
    }


async def main(tickets: int, server_url: str, runs: int) -> dict[str, Any]:
    async with bench_database(server_url, "ticketry_bench") as url:
        return await _run(tickets, url, runs)


async def _run(tickets: int, url: str, runs: int) -> dict[str, Any]:
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
    actor = system_principal("bench")
    first_queue = 1

    async def page(
        filters: TicketFilters, sort: TicketSort, cursor: str | None = None
    ) -> str | None:
        async with maker() as session:
            _, next_page = await service.list_tickets(session, actor, filters, sort, cursor, 50)
            return next_page

    deep_cursor = None
    for _ in range(100):
        deep_cursor = await page(TicketFilters(), TicketSort.created_at_desc, deep_cursor)

    cases: dict[str, Callable[[], Awaitable[str | None]]] = {
        "newest": lambda: page(TicketFilters(), TicketSort.created_at_desc),
        "queue_open_newest": lambda: page(
            TicketFilters(queue_id=first_queue, status=[TicketStatus.open]),
            TicketSort.created_at_desc,
        ),
        "assignee": lambda: page(TicketFilters(assignee_id=1), TicketSort.created_at_desc),
        "customer_history": lambda: page(TicketFilters(customer_id=1), TicketSort.created_at_desc),
        "tag_vip": lambda: page(TicketFilters(tag=["vip"]), TicketSort.created_at_desc),
        "urgent_by_priority": lambda: page(
            TicketFilters(priority=[TicketPriority.urgent]), TicketSort.priority_desc
        ),
        "sync_by_updated_at": lambda: page(TicketFilters(), TicketSort.updated_at),
        "page_101_by_cursor": lambda: page(
            TicketFilters(), TicketSort.created_at_desc, deep_cursor
        ),
        "assignee_open": lambda: page(
            TicketFilters(assignee_id=1, status=[TicketStatus.open]), TicketSort.created_at_desc
        ),
    }
    results = {name: await _timed(call, runs) for name, call in cases.items()}
    await engine.dispose()
    return {
        "benchmark": "tickets_list",
        "tickets": tickets,
        "page_size": 50,
        "seed_seconds": round(seed_seconds, 1),
        "runs_per_case": runs,
        "cases": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER,
    )
    args = parser.parse_args()
    figures = asyncio.run(main(args.tickets, async_database_url(args.database_url), args.runs))
    print(json.dumps(figures))
