"""Incremental export throughput: seeds N tickets (default 100,000) with their customers into
a fresh database, then reads the whole tickets table through the export, page after page, as
a mirror's first sync does; and times one page deep in the table, after a tenth of the rows
changed.

Prints one JSON line. Usage:
    python bench/export.py [--tickets 100000] [--limit 1000] [--database-url postgresql://...]
Without --database-url it uses TICKETRY_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432.
The benchmark creates and drops its own database `ticketry_bench_export`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.schemas import system_principal
from app.core.config import async_database_url
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.export import service
from app.export.schemas import ExportEntity
from bench.common import DEFAULT_SERVER, bench_database

SEED_SQL = """
INSERT INTO customers (name, version)
SELECT 'Kunde ' || g, 1 FROM generate_series(1, $customers) g;
INSERT INTO tickets (subject, status, priority, channel, customer_id, tags, version)
SELECT 'Sag ' || g, 'open', 'normal', 'email', (SELECT min(id) FROM customers) + g % $customers,
       CASE WHEN g % 7 = 0 THEN ARRAY['vip'] ELSE '{}' END, 1
FROM generate_series(1, $tickets) g;
ANALYZE;
"""

# A tenth of the tickets changed later, in another transaction: they move to the end.
CHANGE_SQL = "UPDATE tickets SET priority = 'high' WHERE id % 10 = 0; ANALYZE tickets;"

PLAN_SQL = """
EXPLAIN (FORMAT JSON)
SELECT id FROM tickets
WHERE change_txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
  AND (change_txid, id) > ($1, $2)
ORDER BY change_txid, id LIMIT 1001
"""


async def main(tickets: int, limit: int, server_url: str) -> dict[str, Any]:
    async with bench_database(server_url, "ticketry_bench_export") as url:
        return await _run(tickets, limit, url)


def _index_names(plan: dict[str, Any]) -> set[str]:
    names = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        names |= _index_names(child)
    return names


async def _run(tickets: int, limit: int, url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=2)
    await upgrade_to_head(engine)
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    seeding = time.perf_counter()
    await raw.execute(
        SEED_SQL.replace("$customers", str(max(tickets // 10, 1))).replace("$tickets", str(tickets))
    )
    seed_seconds = time.perf_counter() - seeding

    maker = create_sessionmaker(engine)
    actor = system_principal("bench")

    async def page(cursor: str | None) -> tuple[int, str, bool]:
        async with maker() as session:
            batch = await service.export(
                session, actor, ExportEntity.tickets, cursor=cursor, limit=limit
            )
        # Serialised as the API does, so the figure is what a client gets.
        for change in batch.changes:
            change.item.model_dump_json()
        return len(batch.changes), batch.next_cursor, batch.has_more

    started = time.perf_counter()
    served, cursor, more = 0, None, True
    while more:
        count, cursor, more = await page(cursor)
        served += count
    full_seconds = time.perf_counter() - started

    await raw.execute(CHANGE_SQL)
    changed = 0
    while not changed:
        # Until every transaction older than the change has ended (others on the server too).
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        changed, _, _ = await page(cursor)
        deep_page_ms = (time.perf_counter() - started) * 1000

    deep_txid = await raw.fetchval("SELECT max(change_txid) FROM tickets")
    [plan] = json.loads(await raw.fetchval(PLAN_SQL, deep_txid - 1, 0))
    await raw.close()
    await engine.dispose()
    return {
        "benchmark": "export",
        "tickets": tickets,
        "page_size": limit,
        "seed_seconds": round(seed_seconds, 1),
        "rows_served": served,
        "rows_per_second": round(served / full_seconds),
        "changed_page_rows": changed,
        "changed_page_ms": round(deep_page_ms, 2),
        "indexes_used": sorted(_index_names(plan["Plan"])),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    args = parser.parse_args()
    figures = asyncio.run(main(args.tickets, args.limit, async_database_url(args.database_url)))
    print(json.dumps(figures))
