"""notify_email: rules and SLA escalation steps mail agents about a ticket through the outbox,
apart from the customer's conversation, and say to whom (or why to nobody)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.clock import utcnow
from app.outbound.models import MailPurpose, OutboundMail
from app.privacy.models import SensitivePattern
from app.queues.models import Queue
from app.scheduler.service import run_automation_pass
from app.sla.scheduler import run_sla_pass
from tests.conftest import Caller, MakeAgent
from tests.outbound.conftest import LOGIN, Outbox

SUBJECT = "Kortet virker ikke"


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on the test's rolled-back transaction, as the passes open them."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


async def put_rules(
    client: httpx.AsyncClient, admin: Caller, *rules: dict[str, Any]
) -> httpx.Response:
    return await client.put("/api/v1/rules", headers=admin.headers, json={"rules": rules})


def rule(*actions: dict[str, Any], triggers: tuple[str, ...] = ("scheduled",)) -> dict[str, Any]:
    return {
        "id": "no-answer",
        "name": "Four hours without an answer",
        "triggers": list(triggers),
        "actions": list(actions),
    }


async def new_ticket(client: httpx.AsyncClient, admin: Caller, **fields: Any) -> dict[str, Any]:
    body = {
        "subject": SUBJECT,
        "customer": {"email": "kunde@example.dk", "name": "Kunde"},
        "message": {"body_text": "Hej"},
        **fields,
    }
    response = await client.post("/api/v1/tickets", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def applied(client: httpx.AsyncClient, admin: Caller, ticket_id: int) -> list[str]:
    """The outcome of every action applied to the ticket, oldest routing first."""
    response = await client.get(f"/api/v1/tickets/{ticket_id}/routing", headers=admin.headers)
    assert response.status_code == 200, response.text
    return [a["outcome"] for t in reversed(response.json()) for a in t["applied"]]


async def test_a_scheduled_rule_mails_the_assignee_apart_from_the_conversation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    outbox: Outbox,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(email="agnete@firma.dk")
    assert (
        await put_rules(client, admin, rule({"type": "notify_email", "to": "assignee"}))
    ).is_success
    ticket = await new_ticket(
        client,
        admin,
        subject=f"{SUBJECT}: 4571 0000 0000 0001",
        queue_id=outbox.queue_id,
        assignee_id=agent.id,
    )

    assert await run_automation_pass(maker, utcnow() + timedelta(hours=1), config=outbox.config)
    assert await outbox.worker.send_due() == 1

    [mail] = outbox.sink.to("agnete@firma.dk")
    message = mail.message
    assert mail.recipients == ["agnete@firma.dk"]
    assert message["From"].addresses[0].addr_spec == LOGIN[0]
    assert message["Auto-Submitted"] == "auto-generated"
    # The card number masked as in every answer to agents: the mail leaves for an inbox.
    assert message["Subject"] == f"Ticket #{ticket['number']}: {SUBJECT}: **** **** **** 0001"
    assert b"4571" not in mail.raw
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert f"#{ticket['number']}" in text
    assert "Why: rule 'no-answer' (Four hours without an answer)" in text
    assert f"/api/v1/tickets/{ticket['id']}" in text
    [row] = await session.scalars(
        select(OutboundMail).where(OutboundMail.ticket_id == ticket["id"])
    )
    assert (row.purpose, row.message_id, row.status.value) == (
        MailPurpose.notification,
        None,
        "sent",
    )
    assert f"email to agnete@firma.dk queued (outbound mail {row.id})" in await applied(
        client, admin, ticket["id"]
    )
    messages = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin.headers)
    assert len(messages.json()["items"]) == 1  # the customer's; the notification is no message


async def test_a_notification_masks_with_patterns_configured_since_the_last_request(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    outbox: Outbox,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(email="agnete@firma.dk")
    assert (
        await put_rules(client, admin, rule({"type": "notify_email", "to": "assignee"}))
    ).is_success
    await new_ticket(
        client,
        admin,
        subject=f"{SUBJECT}: konto 1234-5678901234",
        queue_id=outbox.queue_id,
        assignee_id=agent.id,
    )
    # Configured as another process would: no request of this one has seen it yet.
    session.add(
        SensitivePattern(name="konto", label="Kontonummer", regex=r"\d{4}-\d{10}", enabled=True)
    )
    await session.flush()

    assert await run_automation_pass(maker, utcnow() + timedelta(hours=1), config=outbox.config)
    assert await outbox.worker.send_due() == 1

    [mail] = outbox.sink.to("agnete@firma.dk")
    assert b"5678901234" not in mail.raw
    assert mail.message["Subject"].endswith(f"{SUBJECT}: konto ****-********34")


async def test_an_event_rule_mails_the_supervisors_of_the_team_from_a_template(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    outbox: Outbox,
) -> None:
    boss = await make_agent("supervisor", email="chef@firma.dk")
    member = await make_agent(email="medarbejder@firma.dk")
    team = await client.post("/api/v1/teams", headers=admin.headers, json={"name": "Kort"})
    for agent_id in (boss.id, member.id):
        added = await client.put(
            f"/api/v1/teams/{team.json()['id']}/members/{agent_id}", headers=admin.headers
        )
        assert added.is_success, added.text
    template = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={
            "name": "Haster",
            "subject": "Haster: {{ ticket.reference }}",
            "body": "{{ ticket.subject }} er {{ ticket.priority }}.",
        },
    )
    assert template.status_code == 201, template.text
    urgent = {
        "id": "urgent",
        "name": "Urgent mail",
        "triggers": ["ticket_created"],
        "when": {"field": "ticket.priority", "op": "equals", "value": "high"},
        "actions": [
            {"type": "raise_priority"},
            {"type": "notify_email", "to": "supervisors", "template_id": template.json()["id"]},
        ],
    }
    assert (await put_rules(client, admin, urgent)).is_success

    ticket = await new_ticket(
        client, admin, queue_id=outbox.queue_id, team_id=team.json()["id"], priority="high"
    )
    assert await outbox.worker.send_due() == 1

    [mail] = outbox.sink.received
    assert mail.recipients == ["chef@firma.dk"]
    assert mail.message["Subject"] == f"Haster: [#{ticket['number']}]"
    body = mail.message.get_body(("plain",))
    assert body is not None
    # The priority as the rule's actions leave it.
    assert body.get_content().strip() == f"{SUBJECT} er urgent."


async def test_nobody_to_mail_skips_the_action_with_the_reason(
    client: httpx.AsyncClient,
    admin: Caller,
    outbox: Outbox,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    assert (
        await put_rules(client, admin, rule({"type": "notify_email", "to": "assignee"}))
    ).is_success
    ticket = await new_ticket(client, admin, queue_id=outbox.queue_id)

    assert await run_automation_pass(maker, utcnow() + timedelta(hours=1), config=outbox.config)
    assert await outbox.worker.send_due() == 0
    assert await applied(client, admin, ticket["id"]) == [
        "skipped: the ticket has no active assignee to email"
    ]


async def test_an_escalation_step_at_80_percent_mails_the_assignee_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    outbox: Outbox,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(email="agnete@firma.dk")
    policy = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={
            "name": "Guld",
            "targets": {"normal": {"first_response": 60}},
            "escalations": [
                {"at_percent": 80, "actions": [{"type": "notify_email", "to": "assignee"}]}
            ],
        },
    )
    assert policy.status_code == 201, policy.text
    queue = await session.get(Queue, outbox.queue_id)
    assert queue is not None
    queue.sla_policy_id = policy.json()["id"]
    await session.flush()
    ticket = await new_ticket(client, admin, queue_id=outbox.queue_id, assignee_id=agent.id)
    start = utcnow()

    await run_sla_pass(maker, start + timedelta(minutes=47), config=outbox.config)
    assert await outbox.worker.send_due() == 0
    await run_sla_pass(maker, start + timedelta(minutes=49), config=outbox.config)
    await run_sla_pass(maker, start + timedelta(minutes=55), config=outbox.config)
    assert await outbox.worker.send_due() == 1

    [mail] = outbox.sink.to("agnete@firma.dk")
    body = mail.message.get_body(("plain",))
    assert body is not None
    assert "Why: SLA policy 'Guld', escalation step 0: 80 % of the first_response target" in (
        body.get_content()
    )
    sla = await client.get(f"/api/v1/tickets/{ticket['id']}/sla", headers=admin.headers)
    [escalation] = sla.json()["targets"][0]["escalations"]
    assert escalation["outcome"].startswith("email to agnete@firma.dk queued (outbound mail ")


NOTIFY = "/actions/0/notify_email"
"""Where the rule language's own checks point (the action's kind is part of the path)."""


@pytest.mark.parametrize(
    ("action", "where", "says"),
    [
        ({"type": "notify_email", "to": "team", "address": "a@firma.dk"}, NOTIFY, "exactly one"),
        ({"type": "notify_email", "address": "ikke-en"}, f"{NOTIFY}/address", "not a valid"),
        ({"type": "notify_email", "address": LOGIN[0]}, "/actions/0/address", "own mailbox"),
        (
            {"type": "notify_email", "to": "team", "template_id": 999999},
            "/actions/0/template_id",
            "template 999999 does not exist",
        ),
    ],
)
async def test_rules_and_policies_with_a_bad_notification_are_refused_where_it_is(
    client: httpx.AsyncClient,
    admin: Caller,
    outbox: Outbox,
    action: dict[str, Any],
    where: str,
    says: str,
) -> None:
    response = await put_rules(client, admin, rule(action))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == f"/body/rules/0{where}"
    assert says in error["detail"]

    policy = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={"name": "Sølv", "escalations": [{"at_percent": 80, "actions": [action]}]},
    )
    assert policy.status_code == 422, policy.text
    [error] = policy.json()["errors"]
    assert error["pointer"] == f"/body/escalations/0{where}"
    assert says in error["detail"]


async def test_a_simulation_says_whom_it_would_email_and_sends_nothing(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent(email="agnete@firma.dk")
    ticket = await new_ticket(client, admin, queue_id=outbox.queue_id, assignee_id=agent.id)
    response = await client.post(
        "/api/v1/rules/simulate",
        headers=admin.headers,
        json={
            "ticket_id": ticket["id"],
            "trigger": "scheduled",
            "rule_set": {
                "rules": [
                    rule(
                        {"type": "notify_email", "to": "assignee"},
                        {"type": "notify_email", "address": "vagt@firma.dk"},
                    )
                ]
            },
        },
    )
    assert response.status_code == 200, response.text
    assert [a["outcome"] for a in response.json()["applied"]] == [
        "would email agnete@firma.dk",
        "would email vagt@firma.dk",
    ]
    assert await outbox.worker.send_due() == 0
