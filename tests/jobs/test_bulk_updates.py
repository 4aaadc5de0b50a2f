"""Bulk updates through the API, worked on by the bulk job worker."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agents.models import Agent
from app.api.deps import get_settings_dep
from app.core.clock import utcnow
from app.core.config import Settings
from app.events.models import Event
from app.jobs.models import BulkJob
from app.jobs.worker import BulkJobWorker
from app.tickets.models import TicketStatus
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events
from tests.jobs.conftest import Desk, worker_on

BULK = "/api/v1/tickets/bulk"


async def start(client: httpx.AsyncClient, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(BULK, headers=caller.headers, json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    return job


async def job_of(client: httpx.AsyncClient, caller: Caller, job_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}", headers=caller.headers)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def ticket(client: httpx.AsyncClient, caller: Caller, ticket_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tickets/{ticket_id}", headers=caller.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_tickets_by_id_get_status_and_tags_and_the_job_counts_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    desk: Desk,
    admin: Caller,
    worker: BulkJobWorker,
) -> None:
    first = await add_ticket(session, queue_id=desk.support, tags=["gammel", "faktura"])
    second = await add_ticket(session, queue_id=desk.billing)
    already = await add_ticket(session, status=TicketStatus.pending, tags=["vip"])
    job = await start(
        client,
        desk.agent,
        {
            "ticket_ids": [first, second, already, first],
            "changes": {"status": "pending", "add_tags": ["vip"], "remove_tags": ["gammel"]},
        },
    )
    assert (job["state"], job["total"], job["pending"]) == ("queued", 3, 3)
    assert job["requester_agent_id"] == desk.agent.id

    assert await worker.run_until_idle() == 3
    done = await job_of(client, desk.agent, job["id"])
    assert done["state"] == "done"
    assert (done["succeeded"], done["unchanged"], done["failed"], done["pending"]) == (2, 1, 0, 0)
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    changed = await ticket(client, desk.agent, first)
    assert (changed["status"], changed["tags"]) == ("pending", ["faktura", "vip"])
    assert (await ticket(client, desk.agent, second))["tags"] == ["vip"]

    # One job in the audit log, and each ticket's change made by the requester under it.
    created = await audit_events(client, admin, entity_type="bulk_job", action="bulk_job.created")
    assert created[0]["entity_id"] == str(job["id"])
    assert created[0]["actor_agent_id"] == desk.agent.id
    assert created[0]["after"]["selection"] == {"ticket_ids": [first, second, already, first]}
    assert created[0]["after"]["total"] == 3
    finished = await audit_events(client, admin, entity_type="bulk_job", action="bulk_job.finished")
    assert finished[0]["after"] == {
        "state": "done",
        "total": 3,
        "succeeded": 2,
        "unchanged": 1,
        "failed": 0,
    }
    change = await audit_events(
        client, admin, entity_type="ticket", entity_id=str(first), action="ticket.updated"
    )
    assert len(change) == 1
    assert change[0]["actor_agent_id"] == desk.agent.id
    assert change[0]["request_id"] == f"job-{job['id']}"
    assert change[0]["after"]["status"] == "pending"
    untouched = await audit_events(
        client, admin, entity_type="ticket", entity_id=str(already), action="ticket.updated"
    )
    assert untouched == []

    event = await session.scalar(select(Event).where(Event.type == "bulk_job.finished"))
    assert event is not None
    assert event.entity_id == job["id"]
    assert event.data["succeeded"] == 2
    assert event.data["state"] == "done"


async def test_a_filter_is_resolved_when_the_job_is_created(
    client: httpx.AsyncClient, session: AsyncSession, desk: Desk, worker: BulkJobWorker
) -> None:
    chosen = [await add_ticket(session, queue_id=desk.support) for _ in range(3)]
    other = await add_ticket(session, queue_id=desk.billing)
    job = await start(
        client,
        desk.agent,
        {
            "filter": {"queue_id": desk.support, "status": ["open"]},
            "changes": {"assignee_id": desk.agent.id, "queue_id": desk.billing},
        },
    )
    assert job["selection"] == {"filter": {"queue_id": desk.support, "status": ["open"]}}
    late = await add_ticket(session, queue_id=desk.support)

    await worker.run_until_idle()
    assert (await job_of(client, desk.agent, job["id"]))["succeeded"] == 3
    for ticket_id in chosen:
        moved = await ticket(client, desk.agent, ticket_id)
        assert (moved["queue_id"], moved["assignee_id"]) == (desk.billing, desk.agent.id)
    for ticket_id in (other, late):
        assert (await ticket(client, desk.agent, ticket_id))["assignee_id"] is None
    items = await client.get(f"/api/v1/jobs/{job['id']}/items", headers=desk.agent.headers)
    assert [i["ticket_id"] for i in items.json()["items"]] == sorted(chosen)
    assert {i["state"] for i in items.json()["items"]} == {"updated"}


async def test_tickets_that_cannot_be_changed_fail_alone_with_the_reason(
    client: httpx.AsyncClient, session: AsyncSession, desk: Desk, worker: BulkJobWorker
) -> None:
    granted = await add_ticket(session, queue_id=desk.support)
    not_granted = await add_ticket(session, queue_id=desk.billing)
    also_granted = await add_ticket(session, queue_id=desk.support)
    job = await start(
        client,
        desk.agent,
        {
            "ticket_ids": [granted, not_granted, 999_999_999, also_granted],
            "changes": {"assignee_id": desk.partner.id, "add_tags": ["partner"]},
        },
    )
    await worker.run_until_idle()

    done = await job_of(client, desk.agent, job["id"])
    assert (done["state"], done["succeeded"], done["failed"]) == ("done", 2, 2)
    failed = await client.get(
        f"/api/v1/jobs/{job['id']}/items",
        headers=desk.agent.headers,
        params={"state": "failed", "limit": 1},
    )
    page = failed.json()
    assert page["items"][0]["ticket_id"] == not_granted
    assert "without a grant for this ticket's queue" in page["items"][0]["error"]
    rest = await client.get(
        f"/api/v1/jobs/{job['id']}/items",
        headers=desk.agent.headers,
        params={"state": "failed", "cursor": page["next_cursor"]},
    )
    assert [(i["ticket_id"], i["error"]) for i in rest.json()["items"]] == [
        (999_999_999, "Ticket 999999999 does not exist.")
    ]
    # The failed ticket's change was rolled back whole: no tag without the assignee.
    kept = await ticket(client, desk.agent, not_granted)
    assert (kept["assignee_id"], kept["tags"]) == (None, [])
    assert (await ticket(client, desk.agent, also_granted))["assignee_id"] == desk.partner.id


async def test_a_deactivated_requesters_job_fails_without_changing_tickets(
    client: httpx.AsyncClient,
    session: AsyncSession,
    desk: Desk,
    admin: Caller,
    worker: BulkJobWorker,
) -> None:
    ticket_id = await add_ticket(session)
    body = {"ticket_ids": [ticket_id], "changes": {"status": "solved"}}
    job = await start(client, desk.agent, body)
    await session.execute(update(Agent).where(Agent.id == desk.agent.id).values(active=False))
    await worker.run_until_idle()

    assert (await job_of(client, admin, job["id"]))["state"] == "failed"
    items = await client.get(f"/api/v1/jobs/{job['id']}/items", headers=admin.headers)
    assert [(i["state"], i["error"]) for i in items.json()["items"]] == [
        ("failed", "The agent who started the job is deactivated or no longer exists.")
    ]
    assert (await ticket(client, admin, ticket_id))["status"] == "open"


async def test_only_agents_and_above_start_jobs_and_only_the_requester_and_admins_see_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    desk: Desk,
    admin: Caller,
    make_agent: MakeAgent,
) -> None:
    ticket_id = await add_ticket(session, queue_id=desk.support)
    body = {"ticket_ids": [ticket_id], "changes": {"add_tags": ["x"]}}
    refused = await client.post(BULK, headers=desk.partner.headers, json=body)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"

    job = await start(client, desk.agent, body)
    colleague = await make_agent("supervisor")
    for path in (f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{job['id']}/items"):
        hidden = await client.get(path, headers=colleague.headers)
        assert hidden.status_code == 403, hidden.text
        assert (await client.get(path, headers=admin.headers)).status_code == 200
    missing = await client.get("/api/v1/jobs/999999999", headers=admin.headers)
    assert missing.status_code == 404


async def test_requests_that_cannot_make_a_job_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, desk: Desk
) -> None:
    ticket_id = await add_ticket(session)
    for body in (
        {
            "ticket_ids": [ticket_id],
            "filter": {"queue_id": desk.support},
            "changes": {"status": "open"},
        },
        {"changes": {"status": "open"}},
        {"ticket_ids": [ticket_id], "changes": {}},
        {"ticket_ids": [ticket_id], "changes": {"add_tags": [], "remove_tags": []}},
        {"ticket_ids": [ticket_id], "changes": {"add_tags": ["a"], "remove_tags": ["a"]}},
        {"ticket_ids": [ticket_id], "changes": {"status": None}},
        {"filter": {"queue": desk.support}, "changes": {"status": "open"}},
    ):
        response = await client.post(BULK, headers=desk.agent.headers, json=body)
        assert response.status_code == 422, (body, response.text)


async def test_more_tickets_than_the_cap_ask_for_a_narrower_filter(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app: FastAPI,
    settings: Settings,
    desk: Desk,
) -> None:
    ids = [await add_ticket(session, queue_id=desk.support) for _ in range(3)]
    capped = settings.model_copy(update={"bulk_max_tickets": 2})
    app.dependency_overrides[get_settings_dep] = lambda: capped
    try:
        by_filter = await client.post(
            BULK,
            headers=desk.agent.headers,
            json={"filter": {"queue_id": desk.support}, "changes": {"status": "solved"}},
        )
        by_ids = await client.post(
            BULK,
            headers=desk.agent.headers,
            json={"ticket_ids": ids, "changes": {"status": "solved"}},
        )
        fits = await client.post(
            BULK,
            headers=desk.agent.headers,
            json={"ticket_ids": ids[:2], "changes": {"status": "solved"}},
        )
    finally:
        app.dependency_overrides.pop(get_settings_dep)
    assert by_filter.status_code == 422
    assert "more than 2 tickets" in by_filter.json()["detail"]
    assert "narrow the filter" in by_filter.json()["detail"]
    assert by_ids.status_code == 422
    assert fits.status_code == 202


async def test_a_retry_with_the_same_idempotency_key_gets_the_same_job(
    client: httpx.AsyncClient, session: AsyncSession, desk: Desk
) -> None:
    ticket_id = await add_ticket(session)
    body = {"ticket_ids": [ticket_id], "changes": {"status": "solved"}}
    headers = {**desk.agent.headers, "Idempotency-Key": "masse-1"}
    first = await client.post(BULK, headers=headers, json=body)
    again = await client.post(BULK, headers=headers, json=body)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["id"] == first.json()["id"]
    created = await session.scalar(
        select(func.count()).select_from(BulkJob).where(BulkJob.requester_agent_id == desk.agent.id)
    )
    assert created == 1


async def test_a_cancelled_job_changes_no_more_tickets(
    client: httpx.AsyncClient, session: AsyncSession, desk: Desk, worker: BulkJobWorker
) -> None:
    ids = [await add_ticket(session) for _ in range(3)]
    job = await start(client, desk.agent, {"ticket_ids": ids, "changes": {"status": "solved"}})
    assert await worker.run_batch() == 2
    cancel = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=desk.agent.headers)
    assert cancel.status_code == 200, cancel.text
    assert (cancel.json()["state"], cancel.json()["succeeded"], cancel.json()["pending"]) == (
        "cancelled",
        2,
        1,
    )
    assert await worker.run_until_idle() == 0
    assert (await ticket(client, desk.agent, ids[2]))["status"] == "open"
    again = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=desk.agent.headers)
    assert again.status_code == 409


async def test_the_run_loop_works_then_stops_when_told(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    settings: Settings,
    desk: Desk,
) -> None:
    ids = [await add_ticket(session) for _ in range(3)]
    job = await start(client, desk.agent, {"ticket_ids": ids, "changes": {"status": "solved"}})
    batches = 0
    idle = asyncio.Event()

    def clock() -> datetime:
        # Two batches of two items, then one finding nothing left.
        nonlocal batches
        batches += 1
        if batches == 3:
            idle.set()
        return utcnow()

    stop = asyncio.Event()
    running = asyncio.create_task(
        worker_on(connection, settings, poll_seconds=3600, clock=clock).run(stop)
    )
    await asyncio.wait_for(idle.wait(), 10)
    stop.set()
    await asyncio.wait_for(running, 10)  # at once, not after the hour-long poll

    assert (await job_of(client, desk.agent, job["id"]))["state"] == "done"


async def test_the_rules_for_ticket_updates_run_on_each_changed_ticket(
    client: httpx.AsyncClient,
    session: AsyncSession,
    desk: Desk,
    admin: Caller,
    worker: BulkJobWorker,
) -> None:
    rule = {
        "id": "afsluttet",
        "name": "Solved tickets are marked",
        "triggers": ["ticket_updated"],
        "when": {"field": "ticket.status", "op": "equals", "value": "solved"},
        "actions": [{"type": "add_tags", "tags": ["afsluttet"]}],
    }
    saved = await client.put("/api/v1/rules", headers=admin.headers, json={"rules": [rule]})
    assert saved.status_code == 200, saved.text
    ticket_id = await add_ticket(session)
    await start(client, desk.agent, {"ticket_ids": [ticket_id], "changes": {"status": "solved"}})
    await worker.run_until_idle()

    assert (await ticket(client, desk.agent, ticket_id))["tags"] == ["afsluttet"]
