"""Incidents and proactive updates: one status message reaches every affected customer, and
periodic updates keep their rhythm with the time injected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.customers.models import Customer
from app.incidents import service as incidents
from app.incidents.models import TicketUpdateSchedule
from app.incidents.scheduler import run_proactive_update_pass
from app.outbound.models import OutboundMail
from app.outbound.service import OutboundConfig
from app.queues.models import Queue
from app.scheduler.service import run_automation_pass
from app.templates.models import Template
from app.tickets.models import MailKind, Message, MessageDirection, Ticket
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events
from tests.outbound.conftest import LOGIN, make_mailbox, worker_on
from tests.smtpserver import SmtpSink

T0 = datetime(2026, 11, 23, 17, 55, tzinfo=UTC)


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """What the scheduler gets, on the test's rolled-back transaction."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def supervisor(make_agent: MakeAgent) -> Caller:
    return await make_agent("supervisor", name="Signe Supervisor")


async def call(
    client: httpx.AsyncClient, caller: Caller, method: str, path: str, body: Any = None
) -> Any:
    response = await client.request(method, f"/api/v1{path}", headers=caller.headers, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def open_tickets(
    client: httpx.AsyncClient, caller: Caller, count: int, sending_mailbox: int
) -> list[int]:
    """Tickets of different customers, answered from the one mailbox that sends."""
    ids = []
    for n in range(count):
        ticket = await call(
            client,
            caller,
            "POST",
            "/tickets",
            {
                "subject": "Netbanken virker ikke",
                "customer": {"email": f"kunde{n}@example.dk", "name": f"Kunde {n}"},
                "message": {"body_text": "Jeg kan ikke logge ind"},
            },
        )
        ids.append(ticket["id"])
    return ids


async def replies(session: AsyncSession, ticket_id: int) -> list[Message]:
    """The public replies of the ticket that were put in the outbox, oldest first."""
    session.expire_all()
    rows = await session.scalars(
        select(Message)
        .join(OutboundMail, OutboundMail.message_id == Message.id)
        .where(Message.ticket_id == ticket_id, Message.direction == MessageDirection.outbound)
        .order_by(Message.id)
    )
    return list(rows)


async def test_one_status_message_reaches_every_open_ticket_of_the_incident(
    client: httpx.AsyncClient,
    session: AsyncSession,
    supervisor: Caller,
    admin: Caller,
    sending_mailbox: int,
) -> None:
    *affected, solved = await open_tickets(client, supervisor, 4, sending_mailbox)
    await call(client, supervisor, "PATCH", f"/tickets/{solved}", {"status": "solved"})
    incident = await call(
        client,
        supervisor,
        "POST",
        "/incidents",
        {"title": "Netbanken er nede", "status_text": "Vi arbejder på det"},
    )
    linked = await call(
        client,
        supervisor,
        "POST",
        f"/incidents/{incident['id']}/tickets",
        {"ticket_ids": [*affected, solved, affected[0]]},
    )
    assert linked["linked"] == sorted([*affected, solved])

    result = await call(
        client,
        supervisor,
        "POST",
        f"/incidents/{incident['id']}/updates",
        {"body_text": "Netbanken er nede. Næste opdatering kl. 18:25."},
    )
    assert (result["sent"], result["ticket_ids"], result["skipped"]) == (3, affected, [])
    for n, ticket_id in enumerate(affected):
        [reply] = await replies(session, ticket_id)
        assert reply.body_text == "Netbanken er nede. Næste opdatering kl. 18:25."
        assert reply.to_addresses == [f"kunde{n}@example.dk"]
        assert reply.is_public
    assert await replies(session, solved) == [], "a solved ticket is left alone"
    [audited] = await audit_events(
        client, admin, entity_type="incident", action="incident.update_sent"
    )
    assert audited["after"]["sent"] == 3


async def test_an_incident_template_is_filled_in_for_each_ticket(
    client: httpx.AsyncClient, session: AsyncSession, supervisor: Caller, sending_mailbox: int
) -> None:
    [first, second] = await open_tickets(client, supervisor, 2, sending_mailbox)
    template = await call(
        client,
        supervisor,
        "POST",
        "/templates",
        {
            "name": "Driftsstatus",
            "body": "Hej {{ customer.first_name }}: {{ incident.title }} – "
            "{{ incident.status_text }}",
        },
    )
    incident = await call(
        client, supervisor, "POST", "/incidents", {"title": "Netbanken", "status_text": "Nede"}
    )
    await call(
        client, supervisor, "POST", f"/incidents/{incident['id']}/tickets", {"ticket_ids": [first]}
    )
    await call(
        client, supervisor, "POST", f"/incidents/{incident['id']}/tickets", {"ticket_ids": [second]}
    )
    result = await call(
        client,
        supervisor,
        "POST",
        f"/incidents/{incident['id']}/updates",
        {"template_id": template["id"]},
    )
    assert result["sent"] == 2
    [reply] = await replies(session, second)
    assert reply.body_text == "Hej Kunde: Netbanken – Nede"
    assert reply.template_id == template["id"]


async def test_periodic_updates_keep_the_rhythm_and_do_not_burst_after_a_gap(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    supervisor: Caller,
    settings: Settings,
    sending_mailbox: int,
) -> None:
    config = OutboundConfig.from_settings(settings)
    tickets = await open_tickets(client, supervisor, 2, sending_mailbox)
    template = await call(
        client,
        supervisor,
        "POST",
        "/templates",
        {
            "name": "Status hver halve time",
            "body": "{{ incident.status_text }} Næste opdatering "
            "{{ incident.next_update_at|date('%H:%M') }}.",
        },
    )
    incident = await call(
        client,
        supervisor,
        "POST",
        "/incidents",
        {
            "title": "Netbanken er nede",
            "status_text": "Vi arbejder på det.",
            "template_id": template["id"],
            "update_interval_minutes": 30,
            "next_update_at": T0.isoformat(),
        },
    )
    await call(
        client, supervisor, "POST", f"/incidents/{incident['id']}/tickets", {"ticket_ids": tickets}
    )

    assert await run_proactive_update_pass(maker, T0 - timedelta(seconds=1), config=config) == 0
    assert await run_proactive_update_pass(maker, T0, config=config) == 1
    assert await run_proactive_update_pass(maker, T0 + timedelta(minutes=10), config=config) == 0
    for ticket_id in tickets:
        [reply] = await replies(session, ticket_id)
        assert reply.body_text == "Vi arbejder på det. Næste opdatering 18:25."

    # Five hours without a pass: one update, and the next slot stays on the half hours.
    assert await run_proactive_update_pass(maker, T0 + timedelta(hours=5), config=config) == 1
    for ticket_id in tickets:
        assert len(await replies(session, ticket_id)) == 2
    shown = await call(client, supervisor, "GET", f"/incidents/{incident['id']}")
    assert datetime.fromisoformat(shown["next_update_at"]) == T0 + timedelta(hours=5, minutes=30)

    resolved = await call(
        client, supervisor, "PATCH", f"/incidents/{incident['id']}", {"state": "resolved"}
    )
    assert (resolved["state"], resolved["next_update_at"]) == ("resolved", None)
    assert await run_proactive_update_pass(maker, T0 + timedelta(days=1), config=config) == 0


async def test_a_tickets_own_proactive_updates_stop_when_it_is_solved(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
    supervisor: Caller,
    settings: Settings,
    sending_mailbox: int,
) -> None:
    config = OutboundConfig.from_settings(settings)
    agent = await make_agent()
    [ticket_id] = await open_tickets(client, agent, 1, sending_mailbox)
    template = await call(
        client,
        supervisor,
        "POST",
        "/templates",
        {"name": "Stadig i gang", "body": "Vi er på sagen."},
    )
    schedule = await call(
        client,
        agent,
        "PUT",
        f"/tickets/{ticket_id}/proactive-updates",
        {"template_id": template["id"], "every_minutes": 60, "next_update_at": T0.isoformat()},
    )
    assert schedule["every_minutes"] == 60

    assert await run_proactive_update_pass(maker, T0 + timedelta(minutes=1), config=config) == 1
    assert [r.body_text for r in await replies(session, ticket_id)] == ["Vi er på sagen."]

    await call(client, agent, "PATCH", f"/tickets/{ticket_id}", {"status": "solved"})
    assert await run_proactive_update_pass(maker, T0 + timedelta(hours=3), config=config) == 1
    assert len(await replies(session, ticket_id)) == 1, "nothing more once solved"
    gone = await client.get(f"/api/v1/tickets/{ticket_id}/proactive-updates", headers=agent.headers)
    assert gone.status_code == 404


async def test_periodic_updates_need_a_template(
    client: httpx.AsyncClient, supervisor: Caller
) -> None:
    response = await client.post(
        "/api/v1/incidents",
        headers=supervisor.headers,
        json={"title": "Uden skabelon", "update_interval_minutes": 30},
    )
    assert response.status_code == 422, response.text


@pytest.fixture
async def committed_schedules(
    engine: AsyncEngine,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], list[int]]]:
    """Committed tickets with hourly updates due at T0 (removed afterwards), on real
    connections."""
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker.begin() as session:
        customer = Customer(name="Kund")
        template = Template(name=f"Lägesrapport {uuid.uuid4().hex[:8]}", body="Vi jobbar på det.")
        session.add_all([customer, template])
        await session.flush()
        ticket_ids = [await add_ticket(session, customer_id=customer.id) for _ in range(20)]
        session.add_all(
            TicketUpdateSchedule(
                ticket_id=ticket_id, template_id=template.id, every_minutes=60, next_update_at=T0
            )
            for ticket_id in ticket_ids
        )
        customer_id, template_id = customer.id, template.id
    yield maker, ticket_ids
    async with maker.begin() as session:
        await session.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
        await session.execute(delete(Customer).where(Customer.id == customer_id))
        await session.execute(delete(Template).where(Template.id == template_id))


async def test_two_passes_at_once_handle_each_due_update_once(
    committed_schedules: tuple[async_sessionmaker[AsyncSession], list[int]], settings: Settings
) -> None:
    maker, ticket_ids = committed_schedules
    config = OutboundConfig.from_settings(settings)
    now = T0 + timedelta(minutes=1)
    handled = await asyncio.gather(
        run_proactive_update_pass(maker, now, batch=6, config=config),
        run_proactive_update_pass(maker, now, batch=6, config=config),
    )

    assert sum(handled) == 20
    async with maker() as session:
        planned = set(
            await session.scalars(
                select(TicketUpdateSchedule.next_update_at).where(
                    TicketUpdateSchedule.ticket_id.in_(ticket_ids)
                )
            )
        )
    assert planned == {T0 + timedelta(hours=1)}, "each schedule moved on exactly once"


def sla_cycles(sla: dict[str, Any], metric: str) -> list[tuple[bool, bool]]:
    """(met, cancelled) of each cycle of the metric, oldest first."""
    return [
        (t["met_at"] is not None, t["cancelled_at"] is not None)
        for t in sla["targets"]
        if t["metric"] == metric
    ]


async def test_status_updates_are_kept_mailed_and_count_only_as_periodic_updates(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    maker: async_sessionmaker[AsyncSession],
    smtp_sink: SmtpSink,
    make_agent: MakeAgent,
    supervisor: Caller,
    admin: Caller,
    settings: Settings,
) -> None:
    smtp_sink.login = LOGIN
    await smtp_sink.stop()
    await smtp_sink.start()
    config = OutboundConfig.from_settings(settings)
    mailbox = await make_mailbox(session, smtp_sink, config.secret_key, acknowledge=False)
    policy = await call(
        client,
        admin,
        "POST",
        "/sla-policies",
        {"name": "Drift", "targets": {"normal": {"first_response": 240, "periodic_update": 60}}},
    )
    queue = Queue(name="Netbank", mailbox_id=mailbox.id, sla_policy_id=policy["id"])
    session.add(queue)
    await session.flush()
    ticket = await call(
        client,
        supervisor,
        "POST",
        "/tickets",
        {
            "subject": "Netbanken virker ikke",
            "queue_id": queue.id,
            "customer": {"email": "kunde@example.dk", "name": "Kunde"},
            "message": {"body_text": "Jeg kan ikke logge ind"},
        },
    )
    incident = await call(client, supervisor, "POST", "/incidents", {"title": "Netbanken"})
    path = f"/incidents/{incident['id']}"
    await call(client, supervisor, "POST", f"{path}/tickets", {"ticket_ids": [ticket["id"]]})

    text = "Netbanken er nede. Næste opdatering kl. 18:25."
    result = await call(client, supervisor, "POST", f"{path}/updates", {"body_text": text})
    assert result["ticket_ids"] == [ticket["id"]]
    assert (await call(client, supervisor, "GET", path))["status_text"] == text
    [kept] = (await call(client, supervisor, "GET", f"{path}/updates"))["items"]
    assert (kept["body_text"], kept["author_id"], kept["ticket_ids"]) == (
        text,
        supervisor.id,
        [ticket["id"]],
    )

    # Automatic: no first response, the status stays, the mail says it is automatic.
    shown = await call(client, supervisor, "GET", f"/tickets/{ticket['id']}")
    assert (shown["status"], shown["first_response_at"]) == ("new", None)
    sla = await call(client, supervisor, "GET", f"/tickets/{ticket['id']}/sla")
    assert sla_cycles(sla, "first_response") == [(False, False)]
    [reply] = await replies(session, ticket["id"])
    assert reply.kind is MailKind.auto_reply
    assert await worker_on(connection, config).send_due() == 1
    [mail] = smtp_sink.to("kunde@example.dk")
    assert mail.message["Auto-Submitted"] == "auto-replied"
    assert text in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # After an agent's reply, a proactive update meets the periodic update and nothing else.
    agent = await make_agent()
    await call(
        client,
        agent,
        "POST",
        f"/tickets/{ticket['id']}/messages",
        {"body_text": "Vi kigger på det.", "public": True},
    )
    answered = await call(client, agent, "GET", f"/tickets/{ticket['id']}")
    template = await call(
        client, supervisor, "POST", "/templates", {"name": "Stadig nede", "body": "Stadig nede."}
    )
    now = datetime.now(UTC)
    await call(
        client,
        agent,
        "PUT",
        f"/tickets/{ticket['id']}/proactive-updates",
        {"template_id": template["id"], "every_minutes": 30, "next_update_at": now.isoformat()},
    )
    assert await run_proactive_update_pass(maker, now, config=config) == 1
    session.expire_all()
    sla = await call(client, supervisor, "GET", f"/tickets/{ticket['id']}/sla")
    assert sla_cycles(sla, "first_response") == [(True, False)], "met by the agent only"
    assert sla_cycles(sla, "periodic_update") == [(True, False), (False, False)]
    after = await call(client, agent, "GET", f"/tickets/{ticket['id']}")
    assert after["first_response_at"] == answered["first_response_at"]
    assert await worker_on(connection, config).send_due() == 2
    assert len(smtp_sink.to("kunde@example.dk")) == 3


async def test_an_update_that_fails_is_pushed_back_and_the_others_go(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
    supervisor: Caller,
    admin: Caller,
    settings: Settings,
    sending_mailbox: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = OutboundConfig.from_settings(settings)
    agent = await make_agent()
    broken, fine = await open_tickets(client, agent, 2, sending_mailbox)
    template = await call(
        client, supervisor, "POST", "/templates", {"name": "Status", "body": "Vi er på sagen."}
    )
    for ticket_id in (broken, fine):
        await call(
            client,
            agent,
            "PUT",
            f"/tickets/{ticket_id}/proactive-updates",
            {"template_id": template["id"], "every_minutes": 60, "next_update_at": T0.isoformat()},
        )
    send = incidents.send_scheduled_update

    async def send_or_fail(
        session: AsyncSession, schedule: TicketUpdateSchedule, now: datetime, config: OutboundConfig
    ) -> None:
        await send(session, schedule, now, config)
        if schedule.ticket_id == broken:
            raise RuntimeError("a bug in one schedule")

    monkeypatch.setattr(incidents, "send_scheduled_update", send_or_fail)
    assert await run_proactive_update_pass(maker, T0, config=config) == 1
    assert len(await replies(session, fine)) == 1
    assert await replies(session, broken) == [], "rolled back alone"
    schedule = await call(client, agent, "GET", f"/tickets/{broken}/proactive-updates")
    assert datetime.fromisoformat(schedule["next_update_at"]) == T0 + timedelta(minutes=5)
    [failed] = await audit_events(
        client,
        admin,
        entity_type="ticket",
        entity_id=str(broken),
        action="ticket.proactive_update_failed",
    )
    assert failed["after"]["error"] == "RuntimeError: a bug in one schedule"
    monkeypatch.setattr(incidents, "send_scheduled_update", send)
    assert await run_proactive_update_pass(maker, T0 + timedelta(minutes=5), config=config) == 1
    assert len(await replies(session, broken)) == 1


async def test_a_status_update_does_not_stop_the_clock_of_hours_without_an_answer(
    client: httpx.AsyncClient,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    supervisor: Caller,
    admin: Caller,
    settings: Settings,
    sending_mailbox: int,
) -> None:
    rules = {
        "rules": [
            {
                "id": "no-answer",
                "name": "No answer in four hours",
                "triggers": ["scheduled"],
                "when": {"field": "ticket.hours_since_agent_reply", "op": "gte", "value": 4},
                "actions": [{"type": "raise_priority"}],
            }
        ]
    }
    await call(client, admin, "PUT", "/rules", rules)
    [ticket_id] = await open_tickets(client, supervisor, 1, sending_mailbox)
    now = datetime.now(UTC)
    await session.execute(
        update(Ticket).where(Ticket.id == ticket_id).values(created_at=now - timedelta(hours=6))
    )
    incident = await call(client, supervisor, "POST", "/incidents", {"title": "Netbanken"})
    path = f"/incidents/{incident['id']}"
    await call(client, supervisor, "POST", f"{path}/tickets", {"ticket_ids": [ticket_id]})
    await call(client, supervisor, "POST", f"{path}/updates", {"body_text": "Vi er på sagen."})

    config = OutboundConfig.from_settings(settings)
    assert await run_automation_pass(maker, now + timedelta(minutes=1), config=config) == 1
    session.expire_all()
    assert (await call(client, supervisor, "GET", f"/tickets/{ticket_id}"))["priority"] == "high"
