"""Scheduled rules: they fire when their time has come and not before, once per ticket and
episode, are re-armed when their conditions turn false or the status changes, and are
refused where they ask for facts their trigger does not have."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.events.models import Event
from app.outbound.service import OutboundConfig
from app.queues.models import Queue
from app.routing import service as routing
from app.routing.models import RoutingTrace
from app.scheduler.models import AutomationFiring
from app.scheduler.service import run_automation_pass
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events
from tests.outbound.conftest import LOGIN, make_mailbox, worker_on
from tests.smtpserver import SmtpSink

CONFIG = OutboundConfig(
    secret_key="test-secret", public_base_url="http://ticketry.test", ticket_number_prefix="#"
)


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on the test's rolled-back transaction, as the scheduler opens them."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


def rule(rule_id: str, when: dict[str, Any], *actions: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": rule_id.replace("-", " "),
        "triggers": ["scheduled"],
        "when": when,
        "actions": list(actions),
    }


def hours(field: str, op: str, value: float) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


async def put_rules(client: httpx.AsyncClient, admin: Caller, *rules: dict[str, Any]) -> None:
    response = await client.put("/api/v1/rules", headers=admin.headers, json={"rules": rules})
    assert response.status_code == 200, response.text


async def new_ticket(client: httpx.AsyncClient, admin: Caller, **fields: Any) -> dict[str, Any]:
    body = {
        "subject": "Kortet virker ikke",
        "customer": {"email": "kunde@example.dk", "name": "Kunde"},
        "message": {"body_text": "Hej"},
        **fields,
    }
    response = await client.post("/api/v1/tickets", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def ticket(client: httpx.AsyncClient, admin: Caller, ticket_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def set_status(client: httpx.AsyncClient, admin: Caller, ticket_id: int, status: str) -> None:
    response = await client.patch(
        f"/api/v1/tickets/{ticket_id}", headers=admin.headers, json={"status": status}
    )
    assert response.status_code == 200, response.text


def later(**delta: float) -> datetime:
    return utcnow() + timedelta(**delta)


async def test_a_rule_fires_when_its_time_has_come_and_only_once(
    client: httpx.AsyncClient,
    admin: Caller,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    await put_rules(
        client,
        admin,
        rule(
            "no-answer-4h",
            hours("ticket.hours_since_agent_reply", "gte", 4),
            {"type": "raise_priority"},
            {"type": "add_tags", "tags": ["waiting"]},
        ),
    )
    created = await new_ticket(client, admin)
    answered = await new_ticket(client, admin)
    reply = await client.post(
        f"/api/v1/tickets/{answered['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Vi kigger på det", "public": False},
    )
    assert reply.status_code == 201, reply.text

    assert await run_automation_pass(maker, later(hours=3.9), config=CONFIG) == 0
    assert (await ticket(client, admin, created["id"]))["priority"] == "normal"

    # An internal note is no answer: both tickets have waited four hours.
    assert await run_automation_pass(maker, later(hours=4.1), config=CONFIG) == 2
    raised = await ticket(client, admin, created["id"])
    assert raised["priority"] == "high"
    assert raised["tags"] == ["waiting"]
    assert await run_automation_pass(maker, later(hours=8), config=CONFIG) == 0
    assert (await ticket(client, admin, created["id"]))["priority"] == "high"

    traces = await client.get(f"/api/v1/tickets/{created['id']}/routing", headers=admin.headers)
    assert traces.status_code == 200, traces.text
    scheduled = [t for t in traces.json() if t["trigger"] == "scheduled"]
    assert len(scheduled) == 1
    assert [a["outcome"] for a in scheduled[0]["applied"]] == [
        "priority raised to high",
        "tags waiting",
    ]
    assert scheduled[0]["rules"][0]["why"] == "ticket.hours_since_agent_reply is at least 4"
    routed = await audit_events(
        client, admin, entity_type="ticket", entity_id=str(created["id"]), action="ticket.routed"
    )
    assert routed[0]["actor_label"] == "scheduler"
    assert routed[0]["after"]["priority"] == "high"


async def test_a_public_reply_stops_the_clock_of_hours_without_an_answer(
    client: httpx.AsyncClient, admin: Caller, maker: async_sessionmaker[AsyncSession]
) -> None:
    await put_rules(
        client,
        admin,
        rule(
            "no-answer-4h",
            hours("ticket.hours_since_agent_reply", "gte", 4),
            {"type": "raise_priority"},
        ),
    )
    created = await new_ticket(client, admin, priority="urgent")
    await client.post(
        f"/api/v1/tickets/{created['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Vi ringer i morgen", "public": True, "to": ["kunde@example.dk"]},
    )
    assert await run_automation_pass(maker, later(hours=3), config=CONFIG) == 0
    assert await run_automation_pass(maker, later(hours=5), config=CONFIG) == 1
    assert (await ticket(client, admin, created["id"]))["priority"] == "urgent"


async def test_solved_tickets_close_after_three_days(
    client: httpx.AsyncClient, admin: Caller, maker: async_sessionmaker[AsyncSession]
) -> None:
    await put_rules(
        client,
        admin,
        rule(
            "close-solved",
            {
                "all": [
                    {"field": "ticket.status", "op": "equals", "value": "solved"},
                    hours("ticket.hours_since_status_changed", "gte", 72),
                ]
            },
            {"type": "close"},
        ),
    )
    solved = await new_ticket(client, admin)
    still_open = await new_ticket(client, admin)
    await set_status(client, admin, solved["id"], "solved")

    assert await run_automation_pass(maker, later(hours=71), config=CONFIG) == 0
    assert (await ticket(client, admin, solved["id"]))["status"] == "solved"
    assert await run_automation_pass(maker, later(hours=73), config=CONFIG) == 1
    assert (await ticket(client, admin, solved["id"]))["status"] == "closed"
    assert (await ticket(client, admin, still_open["id"]))["status"] == "new"


async def test_a_rule_is_re_armed_when_its_conditions_turn_false(
    client: httpx.AsyncClient,
    admin: Caller,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    await put_rules(
        client,
        admin,
        rule(
            "stale-open",
            {
                "all": [
                    {"field": "ticket.status", "op": "in", "value": ["new", "open"]},
                    hours("ticket.hours_since_created", "gte", 2),
                ]
            },
            {"type": "notify", "event": "stale"},
        ),
    )
    created = await new_ticket(client, admin)
    notified = select(func.count()).select_from(Event).where(Event.type == "routing.notify")
    firings = select(func.count()).select_from(AutomationFiring)

    assert await run_automation_pass(maker, later(hours=2), config=CONFIG) == 1
    assert await run_automation_pass(maker, later(hours=3), config=CONFIG) == 0
    assert await session.scalar(notified) == 1

    await set_status(client, admin, created["id"], "on_hold")
    assert await run_automation_pass(maker, later(hours=3), config=CONFIG) == 0
    assert await session.scalar(firings) == 0

    await set_status(client, admin, created["id"], "open")
    assert await run_automation_pass(maker, later(hours=4), config=CONFIG) == 1
    assert await session.scalar(notified) == 2


async def test_a_rule_is_re_armed_when_the_status_changes_between_passes(
    client: httpx.AsyncClient,
    admin: Caller,
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    await put_rules(
        client,
        admin,
        rule("old", hours("ticket.hours_since_created", "gte", 1), {"type": "raise_priority"}),
    )
    created = await new_ticket(client, admin, priority="low")
    assert await run_automation_pass(maker, later(hours=2), config=CONFIG) == 1
    await set_status(client, admin, created["id"], "pending")
    await set_status(client, admin, created["id"], "open")
    assert await run_automation_pass(maker, later(hours=2), config=CONFIG) == 1
    assert (await ticket(client, admin, created["id"]))["priority"] == "high"
    scheduled = select(func.count()).where(RoutingTrace.trigger == "scheduled")
    assert await session.scalar(scheduled) == 2


async def test_without_scheduled_rules_the_pass_reads_no_ticket(
    client: httpx.AsyncClient, admin: Caller, maker: async_sessionmaker[AsyncSession]
) -> None:
    await put_rules(
        client,
        admin,
        {
            "id": "vip",
            "name": "VIP",
            "when": {"field": "customer.vip", "op": "equals", "value": True},
            "actions": [{"type": "raise_priority"}],
        },
    )
    await new_ticket(client, admin)
    assert await run_automation_pass(maker, later(days=30), config=CONFIG) == 0


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        (
            {
                "id": "r",
                "name": "r",
                "when": {
                    "all": [
                        {"field": "ticket.status", "op": "equals", "value": "open"},
                        hours("ticket.hours_since_created", "gte", 1),
                    ]
                },
                "actions": [{"type": "raise_priority"}],
            },
            "/body/rules/0/when/all/1/field",
            "only rules on scheduled",
        ),
        (
            rule(
                "r", {"field": "message.subject", "op": "contains", "value": "x"}, {"type": "close"}
            ),
            "/body/rules/0/when/field",
            "not known on scheduled",
        ),
        (
            rule("r", hours("ticket.hours_since_creation", "gte", 1), {"type": "close"}),
            "/body/rules/0/when",
            "did you mean ticket.hours_since_created",
        ),
        (
            rule("r", {"field": "sla.breached", "op": "gte", "value": 1}, {"type": "close"}),
            "/body/rules/0/when",
            "does not apply to a boolean field",
        ),
    ],
)
async def test_time_fields_are_refused_where_they_cannot_be_known(
    client: httpx.AsyncClient, admin: Caller, body: dict[str, Any], where: str, message: str
) -> None:
    response = await client.put("/api/v1/rules", headers=admin.headers, json={"rules": [body]})
    assert response.status_code == 422, response.text
    problem = response.json()
    pointers = [e.get("pointer", "") for e in problem.get("errors", [])]
    assert any(p.startswith(where) for p in pointers), problem
    assert message in response.text


async def test_simulating_a_scheduled_rule_shows_what_a_later_pass_would_do(
    client: httpx.AsyncClient, admin: Caller, maker: async_sessionmaker[AsyncSession]
) -> None:
    await put_rules(
        client,
        admin,
        rule(
            "no-answer-4h",
            hours("ticket.hours_since_agent_reply", "gte", 4),
            {"type": "raise_priority"},
        ),
    )
    created = await new_ticket(client, admin)
    for at, matched in ((later(hours=3), False), (later(hours=5), True)):
        response = await client.post(
            "/api/v1/rules/simulate",
            headers=admin.headers,
            json={"ticket_id": created["id"], "trigger": "scheduled", "at": at.isoformat()},
        )
        assert response.status_code == 200, response.text
        assert response.json()["rules"][0]["matched"] is matched
    assert response.json()["priority"] == "high"
    assert (await ticket(client, admin, created["id"]))["priority"] == "normal"
    without_ticket = await client.post(
        "/api/v1/rules/simulate",
        headers=admin.headers,
        json={"trigger": "scheduled", "message": {"sender": "a@example.dk", "subject": "x"}},
    )
    assert without_ticket.status_code == 422
    assert "Scheduled rules run on a ticket" in without_ticket.json()["detail"]


async def test_follow_ups_reached_and_hours_since_the_customer_wrote_are_scheduled_conditions(
    client: httpx.AsyncClient,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    await put_rules(
        client,
        admin,
        rule(
            "call-back",
            {"field": "ticket.follow_up_reached", "op": "equals", "value": True},
            {"type": "add_tags", "tags": ["ring-op"]},
        ),
        rule(
            "customer-silent",
            hours("ticket.hours_since_customer_message", "gte", 24),
            {"type": "add_tags", "tags": ["stille"]},
        ),
    )
    parked = await new_ticket(client, admin)
    plain = await new_ticket(client, admin)
    response = await client.put(
        f"/api/v1/tickets/{parked['id']}/follow-up",
        headers=admin.headers,
        json={"due_at": later(hours=2).isoformat(), "note": "Ring op"},
    )
    assert response.status_code == 200, response.text

    assert await run_automation_pass(maker, later(hours=1), config=CONFIG) == 0
    assert await run_automation_pass(maker, later(hours=2.5), config=CONFIG) == 1
    assert (await ticket(client, admin, parked["id"]))["tags"] == ["ring-op"]
    assert (await ticket(client, admin, plain["id"]))["tags"] == []

    assert await run_automation_pass(maker, later(hours=25), config=CONFIG) == 2
    assert (await ticket(client, admin, parked["id"]))["tags"] == ["ring-op", "stille"]
    assert (await ticket(client, admin, plain["id"]))["tags"] == ["stille"]


async def test_scheduled_rules_assign_move_and_mail_the_customer(
    client: httpx.AsyncClient,
    admin: Caller,
    session: AsyncSession,
    connection: AsyncConnection,
    maker: async_sessionmaker[AsyncSession],
    make_agent: MakeAgent,
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.login = LOGIN
    await smtp_sink.stop()
    await smtp_sink.start()
    mailbox = await make_mailbox(session, smtp_sink, CONFIG.secret_key, acknowledge=False)
    queue = Queue(name="Eskalering", mailbox_id=mailbox.id)
    session.add(queue)
    await session.flush()
    supervisor = await make_agent("supervisor", name="Signe")
    template = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={"name": "Vi har ikke glemt dig", "body": "Hej {{ customer.first_name }}, vi er på."},
    )
    assert template.status_code == 201, template.text
    await put_rules(
        client,
        admin,
        rule(
            "escalate-after-a-day",
            hours("ticket.hours_since_created", "gte", 24),
            {"type": "set_queue", "queue_id": queue.id},
            {"type": "assign", "agent_id": supervisor.id},
            {"type": "send_auto_reply", "template_id": template.json()["id"]},
        ),
    )
    created = await new_ticket(client, admin)

    assert await run_automation_pass(maker, later(hours=23), config=CONFIG) == 0
    assert await run_automation_pass(maker, later(hours=25), config=CONFIG) == 1
    moved = await ticket(client, admin, created["id"])
    assert (moved["queue_id"], moved["assignee_id"]) == (queue.id, supervisor.id)
    assert await worker_on(connection, CONFIG).send_due() == 1
    [mail] = smtp_sink.to("kunde@example.dk")
    assert "Hej Kunde, vi er på." in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail.message["Auto-Submitted"] == "auto-replied"


async def test_a_ticket_whose_actions_fail_is_left_for_the_next_pass_and_the_others_fire(
    client: httpx.AsyncClient,
    admin: Caller,
    maker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await put_rules(
        client,
        admin,
        rule("old", hours("ticket.hours_since_created", "gte", 1), {"type": "raise_priority"}),
    )
    broken, fine = (await new_ticket(client, admin))["id"], (await new_ticket(client, admin))["id"]
    fire = routing.fire_scheduled

    async def fire_or_fail(session: AsyncSession, ticket: Any, *args: Any, **kwargs: Any) -> Any:
        applied = await fire(session, ticket, *args, **kwargs)
        if ticket.id == broken:
            raise RuntimeError("a bug in one ticket's actions")
        return applied

    monkeypatch.setattr(routing, "fire_scheduled", fire_or_fail)
    assert await run_automation_pass(maker, later(hours=2), config=CONFIG) == 1
    assert (await ticket(client, admin, fine))["priority"] == "high"
    assert (await ticket(client, admin, broken))["priority"] == "normal", "rolled back alone"

    monkeypatch.setattr(routing, "fire_scheduled", fire)
    assert await run_automation_pass(maker, later(hours=2), config=CONFIG) == 1
    assert (await ticket(client, admin, broken))["priority"] == "high"
