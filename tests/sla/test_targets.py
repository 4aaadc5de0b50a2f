"""SLA targets through a ticket's life, with the time moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.calendars.models import Calendar
from app.customers.models import Customer
from app.queues.models import Queue
from app.sla import repository as sla_repository
from app.sla.models import SlaMetric, SlaPolicy
from app.tickets import service as tickets
from app.tickets.models import MailKind, ThreadMatch
from app.tickets.schemas import MailMessage, MessageCreate
from tests.conftest import Caller
from tests.sla.conftest import T0, Clock

POLICIES = "/api/v1/sla-policies"


def at(**delta: float) -> str:
    return (T0 + timedelta(**delta)).isoformat().replace("+00:00", "Z")


async def make_policy(client: httpx.AsyncClient, admin: Caller, **body: Any) -> int:
    body.setdefault("name", "Guld")
    response = await client.post(POLICIES, headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    policy_id: int = response.json()["id"]
    return policy_id


async def make_queue(session: AsyncSession, policy_id: int | None) -> int:
    queue = Queue(name=f"Kø {policy_id}", sla_policy_id=policy_id)
    session.add(queue)
    await session.flush()
    return queue.id


async def open_ticket(client: httpx.AsyncClient, admin: Caller, **body: Any) -> int:
    response = await client.post(
        "/api/v1/tickets",
        headers=admin.headers,
        json={
            "subject": "Fakturaen er forkert",
            "customer": {"email": "søren@example.dk", "name": "Søren Ærø"},
            "message": {"body_text": "Hej, min faktura er forkert."},
            **body,
        },
    )
    assert response.status_code == 201, response.text
    ticket_id: int = response.json()["id"]
    return ticket_id


async def history(client: httpx.AsyncClient, admin: Caller, ticket_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/tickets/{ticket_id}/sla", headers=admin.headers)
    assert response.status_code == 200, response.text
    targets: list[dict[str, Any]] = response.json()["targets"]
    return targets


def cycles(targets: list[dict[str, Any]], metric: str) -> list[tuple[Any, ...]]:
    """(started, due, met, cancelled) of each cycle of the metric, oldest first."""
    return [
        (t["started_at"], t["due_at"], t["met_at"], t["cancelled_at"])
        for t in targets
        if t["metric"] == metric
    ]


async def post(client: httpx.AsyncClient, admin: Caller, ticket_id: int, **body: Any) -> None:
    response = await client.post(
        f"/api/v1/tickets/{ticket_id}/messages", headers=admin.headers, json=body
    )
    assert response.status_code == 201, response.text


async def set_status(client: httpx.AsyncClient, admin: Caller, ticket_id: int, status: str) -> None:
    response = await client.patch(
        f"/api/v1/tickets/{ticket_id}", headers=admin.headers, json={"status": status}
    )
    assert response.status_code == 200, response.text


async def test_targets_follow_replies_answers_pending_solving_and_reopening(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    clock: Clock,
    sending_mailbox: int,
) -> None:
    policy_id = await make_policy(
        client,
        admin,
        targets={
            "normal": {
                "first_response": 60,
                "next_response": 30,
                "periodic_update": 120,
                "resolution": 480,
            }
        },
    )
    queue_id = await make_queue(session, policy_id)
    ticket_id = await open_ticket(client, admin, queue_id=queue_id)
    targets = await history(client, admin, ticket_id)
    assert cycles(targets, "first_response") == [(at(), at(minutes=60), None, None)]
    assert cycles(targets, "resolution") == [(at(), at(hours=8), None, None)]

    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)).json()
    assert {t["metric"]: t["due_at"] for t in ticket["sla"]} == {
        "first_response": at(minutes=60),
        "resolution": at(hours=8),
    }

    clock.at(minutes=20)
    await post(client, admin, ticket_id, body_text="Vi kigger på det.")
    targets = await history(client, admin, ticket_id)
    assert cycles(targets, "first_response") == [(at(), at(minutes=60), at(minutes=20), None)]
    assert cycles(targets, "periodic_update") == [(at(minutes=20), at(minutes=140), None, None)]

    clock.at(minutes=30)
    await set_status(client, admin, ticket_id, "pending")
    paused = {t["metric"]: t for t in await history(client, admin, ticket_id) if not t["met_at"]}
    assert paused["resolution"]["paused_at"] == at(minutes=30)
    assert paused["resolution"]["due_at"] is None
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)).json()
    live = {t["metric"]: t for t in ticket["sla"]}
    assert live["resolution"]["paused"] is True
    assert live["resolution"]["remaining_seconds"] == 7.5 * 3600

    # The customer answers: the ticket is open again, the 30 minutes used stay used.
    clock.at(hours=2, minutes=30)
    await post(client, admin, ticket_id, body_text="Her er bilaget.", direction="inbound")
    targets = await history(client, admin, ticket_id)
    assert cycles(targets, "resolution") == [(at(), at(hours=10), None, None)]
    assert cycles(targets, "next_response") == [(at(hours=2, minutes=30), at(hours=3), None, None)]
    assert cycles(targets, "periodic_update") == [
        (at(minutes=20), None, None, at(hours=2, minutes=30))
    ]

    clock.at(hours=2, minutes=40)
    await post(client, admin, ticket_id, body_text="Tak, det er rettet.")
    clock.at(hours=3)
    await set_status(client, admin, ticket_id, "solved")
    targets = await history(client, admin, ticket_id)
    assert cycles(targets, "next_response")[0][2] == at(hours=2, minutes=40)
    assert cycles(targets, "resolution") == [(at(), at(hours=10), at(hours=3), None)]
    assert cycles(targets, "periodic_update")[-1][3] == at(hours=3)
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)).json()
    assert ticket["sla"] == []

    # Reopened by the customer: a new resolution cycle and a next response.
    clock.at(hours=4)
    await post(client, admin, ticket_id, body_text="Den er gal igen.", direction="inbound")
    targets = await history(client, admin, ticket_id)
    assert cycles(targets, "resolution")[1] == (at(hours=4), at(hours=12), None, None)
    assert cycles(targets, "next_response")[1] == (at(hours=4), at(hours=4.5), None, None)


async def test_priority_change_recounts_from_the_start(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, clock: Clock
) -> None:
    policy_id = await make_policy(
        client,
        admin,
        targets={"normal": {"resolution": 480}, "urgent": {"resolution": 60}},
    )
    ticket_id = await open_ticket(client, admin, queue_id=await make_queue(session, policy_id))
    clock.at(minutes=10)
    response = await client.patch(
        f"/api/v1/tickets/{ticket_id}", headers=admin.headers, json={"priority": "urgent"}
    )
    assert response.status_code == 200
    assert [t["due_at"] for t in response.json()["sla"]] == [at(minutes=60)]
    assert cycles(await history(client, admin, ticket_id), "resolution") == [
        (at(), at(minutes=60), None, None)
    ]
    # The ETag the change returned still holds: keeping the SLA state is not a change.
    again = await client.patch(
        f"/api/v1/tickets/{ticket_id}",
        headers={**admin.headers, "If-Match": response.headers["etag"]},
        json={"priority": "low"},
    )
    assert again.status_code == 200
    # No resolution target for low: the running one is cancelled.
    assert cycles(await history(client, admin, ticket_id), "resolution")[0][3] == at(minutes=10)


async def test_a_merged_ticket_cancels_its_resolution(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, clock: Clock
) -> None:
    policy_id = await make_policy(client, admin, targets={"normal": {"resolution": 480}})
    queue_id = await make_queue(session, policy_id)
    source = await open_ticket(client, admin, queue_id=queue_id)
    kept = await open_ticket(client, admin, queue_id=queue_id)
    clock.at(minutes=5)
    merged = await client.post(
        f"/api/v1/tickets/{source}/merge", headers=admin.headers, json={"into_ticket_id": kept}
    )
    assert merged.status_code == 200, merged.text
    assert cycles(await history(client, admin, source), "resolution") == [
        (at(), at(hours=8), None, at(minutes=5))
    ]
    assert cycles(await history(client, admin, kept), "resolution") == [
        (at(), at(hours=8), None, None)
    ]


async def test_business_hours_policy_counts_in_opening_hours(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, clock: Clock
) -> None:
    calendar = Calendar(
        name="Københavnerkontoret",
        timezone="Europe/Copenhagen",
        hours={
            day: [{"start": "08:00", "end": "16:00"}] for day in ("mon", "tue", "wed", "thu", "fri")
        },
    )
    session.add(calendar)
    await session.flush()
    policy_id = await make_policy(
        client, admin, calendar_id=calendar.id, targets={"normal": {"first_response": 120}}
    )
    # Friday 15:30 in Copenhagen (UTC+1): half an hour on Friday, 90 minutes on Monday.
    clock.now = datetime(2026, 2, 27, 14, 30, tzinfo=UTC)
    ticket_id = await open_ticket(client, admin, queue_id=await make_queue(session, policy_id))
    [first] = await history(client, admin, ticket_id)
    assert first["due_at"] == "2026-03-02T08:30:00Z"  # Monday 09:30 in Copenhagen


async def test_routing_rule_policy_wins_over_the_queue_default(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, clock: Clock
) -> None:
    default = await make_policy(client, admin, name="Sølv", targets={"normal": {"resolution": 600}})
    chosen = await make_policy(client, admin, name="Guld", targets={"normal": {"resolution": 60}})
    queue_id = await make_queue(session, default)
    rules = await client.put(
        "/api/v1/rules",
        headers=admin.headers,
        json={
            "rules": [
                {
                    "id": "vip",
                    "name": "VIP",
                    "when": {"field": "message.subject", "op": "contains", "value": "VIP"},
                    "actions": [{"type": "set_sla_policy", "sla_policy_id": chosen}],
                }
            ]
        },
    )
    assert rules.status_code == 200, rules.text
    plain = await open_ticket(client, admin, queue_id=queue_id)
    vip = await open_ticket(client, admin, queue_id=queue_id, subject="VIP: hjælp")
    plain_sla = (await client.get(f"/api/v1/tickets/{plain}/sla", headers=admin.headers)).json()
    vip_sla = (await client.get(f"/api/v1/tickets/{vip}/sla", headers=admin.headers)).json()
    assert plain_sla["policy_id"] == default
    assert vip_sla["policy_id"] == chosen
    assert [t["due_at"] for t in plain_sla["targets"] if not t["cancelled_at"]] == [at(hours=10)]
    assert [t["due_at"] for t in vip_sla["targets"] if not t["cancelled_at"]] == [at(hours=1)]


async def test_mail_keeps_targets_as_the_api_does(session: AsyncSession, clock: Clock) -> None:
    policy = SlaPolicy(name="Post", targets={"normal": {"first_response": 60, "next_response": 30}})
    session.add(policy)
    await session.flush()
    customer = Customer(name="Kari Nordmann")
    session.add(customer)
    await session.flush()
    actor = system_principal("ingest (test)")

    def mail(body: str) -> MailMessage:
        return MailMessage(
            from_address="kari@example.no",
            subject="Regningen",
            body_text=body,
            kind=MailKind.normal,
            threaded_by=ThreadMatch.new_ticket,
            threading_detail="",
        )

    ticket, _ = await tickets.open_ticket_from_mail(
        session,
        actor,
        mail("Hei"),
        customer_id=customer.id,
        queue_id=await make_queue(session, policy.id),
        mailbox_id=None,
    )
    clock.at(minutes=5)
    # A second mail before any answer: the first response is still what is owed.
    await tickets.add_mail(session, actor, ticket.id, mail("Hallo?"), customer_id=customer.id)
    live = (await tickets.sla_targets(session, [ticket]))[ticket.id]
    assert [(t.metric, t.due_at) for t in live] == [
        (SlaMetric.first_response, T0 + timedelta(minutes=60))
    ]

    clock.at(minutes=90)
    await tickets.add_message(session, actor, ticket.id, MessageCreate(body_text="Undskyld!"))
    [first] = (await sla_repository.history(session, ticket.id))[0]
    assert (first.met_at, first.breached_at) == (
        T0 + timedelta(minutes=90),
        T0 + timedelta(minutes=60),
    )


async def test_at_risk_finds_a_later_due_target_at_risk_first(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    clock: Clock,
    sending_mailbox: int,
) -> None:
    policy_id = await make_policy(
        client,
        admin,
        at_risk_percent=80,
        targets={"normal": {"periodic_update": 20, "resolution": 100}},
    )
    ticket_id = await open_ticket(client, admin, queue_id=await make_queue(session, policy_id))
    clock.at(minutes=70)
    # The periodic update is due at 90 (at risk at 86), the resolution at 100 (at risk at 80).
    await post(client, admin, ticket_id, body_text="Vi kigger på det.")

    clock.at(minutes=82)
    listed = await client.get("/api/v1/tickets", headers=admin.headers, params={"sla": "at_risk"})
    assert [t["id"] for t in listed.json()["items"]] == [ticket_id]
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)).json()
    assert {t["metric"]: t["at_risk"] for t in ticket["sla"]} == {
        "periodic_update": False,
        "resolution": True,
    }
