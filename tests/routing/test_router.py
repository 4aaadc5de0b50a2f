"""Routing rules through the API: versions, validation, YAML, and tickets routed by them with
a trace that says why; simulate and replay change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event
from app.routing.models import RoutingTrace, RuleSetVersion
from app.tickets.models import Ticket
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events

RULES = "/api/v1/rules"


async def queue(client: httpx.AsyncClient, admin: Caller, name: str) -> int:
    response = await client.post("/api/v1/queues", headers=admin.headers, json={"name": name})
    assert response.status_code == 201, response.text
    queue_id: int = response.json()["id"]
    return queue_id


def invoice_rules(billing: int, agent_id: int | None = None) -> dict[str, Any]:
    actions: list[dict[str, Any]] = [
        {"type": "set_queue", "queue_id": billing},
        {"type": "set_priority", "priority": "high"},
        {"type": "add_tags", "tags": ["faktura"]},
    ]
    if agent_id is not None:
        actions.append({"type": "assign", "agent_id": agent_id})
    return {
        "rules": [
            {
                "id": "faktura",
                "name": "Invoices to billing",
                "when": {
                    "any": [
                        {
                            "field": "message.subject",
                            "op": "words",
                            "value": ["faktura", "räkning"],
                        },
                        {
                            "field": "message.recipients",
                            "op": "equals",
                            "value": "faktura@firma.dk",
                        },
                    ]
                },
                "actions": actions,
                "stop": True,
            },
            {
                "id": "vip",
                "name": "VIP customers are urgent",
                "when": {"field": "customer.vip", "op": "equals", "value": True},
                "actions": [{"type": "set_priority", "priority": "urgent"}],
            },
        ]
    }


async def put_rules(
    client: httpx.AsyncClient, admin: Caller, body: dict[str, Any], version: int | None = None
) -> httpx.Response:
    headers = {**admin.headers, **({"If-Match": f'"{version}"'} if version is not None else {})}
    return await client.put(RULES, headers=headers, json=body)


async def new_ticket(client: httpx.AsyncClient, caller: Caller, subject: str, **fields: Any) -> Any:
    body = {
        "subject": subject,
        "customer": {"email": "åsa@example.se", "name": "Åsa"},
        "message": {"body_text": "Hej, se bifogad."},
        **fields,
    }
    response = await client.post("/api/v1/tickets", headers=caller.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_rules_are_versioned_audited_and_guarded_by_if_match(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    empty = await client.get(RULES, headers=admin.headers)
    assert empty.status_code == 200
    assert empty.json()["version"] == 0
    assert empty.json()["rules"] == []
    billing = await queue(client, admin, "Fakturering")

    first = await put_rules(client, admin, invoice_rules(billing), version=0)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.headers["ETag"] == '"1"'
    stale = await put_rules(client, admin, invoice_rules(billing), version=0)
    assert stale.status_code == 412

    removed = await client.delete(f"{RULES}/vip", headers={**admin.headers, "If-Match": '"1"'})
    assert removed.status_code == 200, removed.text
    assert [r["id"] for r in removed.json()["rules"]] == ["faktura"]
    added = await client.post(
        f"{RULES}?position=0",
        headers=admin.headers,
        json={
            "id": "spam",
            "name": "Known spam",
            "when": {"field": "message.sender_domain", "op": "in", "value": ["spam.example"]},
            "actions": [{"type": "mark_spam"}],
        },
    )
    assert added.status_code == 201, added.text
    assert [r["id"] for r in added.json()["rules"]] == ["spam", "faktura"]
    assert added.json()["version"] == 3

    versions = await client.get(f"{RULES}/versions", headers=admin.headers)
    assert [v["version"] for v in versions.json()["items"]] == [3, 2, 1]
    old = await client.get(f"{RULES}/versions/1", headers=admin.headers)
    assert [r["id"] for r in old.json()["definition"]["rules"]] == ["faktura", "vip"]
    rule = await client.get(f"{RULES}/faktura", headers=admin.headers)
    assert rule.json()["name"] == "Invoices to billing"
    saved = await audit_events(client, admin, entity_type="rule_set", action="rule_set.saved")
    assert len(saved) == 3


async def test_invalid_rules_are_a_422_pointing_at_the_faulty_part(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    billing = await queue(client, admin, "Fakturering")
    cases: list[tuple[dict[str, Any], str]] = []
    unknown_field = invoice_rules(billing)
    unknown_field["rules"][0]["when"]["any"][1]["field"] = "message.colour"
    cases.append((unknown_field, "rules.0.when"))
    bad_regex = invoice_rules(billing)
    bad_regex["rules"][1]["when"] = {
        "field": "message.subject",
        "op": "regex",
        "value": "(unclosed",
    }
    cases.append((bad_regex, "rules.1.when"))
    missing_queue = invoice_rules(billing + 1000)
    cases.append((missing_queue, "rules.0.actions.0.queue_id"))
    for body, where in cases:
        response = await put_rules(client, admin, body)
        assert response.status_code == 422, response.text
        problem = response.json()
        pointers = " ".join(
            e.get("pointer", "") + e.get("field", "") for e in problem.get("errors", [])
        )
        assert where.replace(".", "/") in pointers or where in problem["detail"], problem
    assert (await client.get(RULES, headers=admin.headers)).json()["version"] == 0


async def test_a_yaml_round_trip_keeps_the_rules_and_makes_no_new_version(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    billing = await queue(client, admin, "Fakturering")
    await put_rules(client, admin, invoice_rules(billing))
    exported = await client.get(f"{RULES}/export", headers=admin.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    assert "räkning" in exported.text
    again = await client.put(
        f"{RULES}/yaml",
        headers={**admin.headers, "Content-Type": "application/yaml"},
        content=exported.text.encode(),
    )
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 1
    changed = await client.put(
        f"{RULES}/yaml",
        headers={**admin.headers, "Content-Type": "application/yaml"},
        content=exported.text.replace("Invoices to billing", "Fakturaer").encode(),
    )
    assert changed.json()["version"] == 2
    assert changed.json()["rules"][0]["name"] == "Fakturaer"
    broken = await client.put(
        f"{RULES}/yaml",
        headers={**admin.headers, "Content-Type": "application/yaml"},
        content=b"rules: [\n  - id: x\n    name: [unclosed\n",
    )
    assert broken.status_code == 422


async def test_a_new_ticket_is_routed_and_its_trace_says_why(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    billing = await queue(client, admin, "Fakturering")
    agent = await make_agent("agent", name="Björn", capacity=5)
    await put_rules(client, admin, invoice_rules(billing, agent_id=agent.id))

    ticket = await new_ticket(client, admin, "Fel på min RÄKNING, igen")
    assert ticket["queue_id"] == billing
    assert ticket["priority"] == "high"
    assert ticket["tags"] == ["faktura"]
    assert ticket["assignee_id"] == agent.id

    traces = await client.get(f"/api/v1/tickets/{ticket['id']}/routing", headers=admin.headers)
    assert traces.status_code == 200
    [trace] = traces.json()
    assert trace["trigger"] == "ticket_created"
    assert trace["rule_set_version"] == 1
    # The first rule stops the evaluation: the VIP rule after it is not evaluated.
    [faktura] = trace["rules"]
    assert faktura["matched"] is True
    assert "räkning" in faktura["why"].lower()
    assert [a["action"]["type"] for a in trace["applied"]] == [
        "set_queue",
        "set_priority",
        "add_tags",
        "assign",
    ]
    assert "Björn" in trace["applied"][3]["outcome"]

    other = await new_ticket(client, admin, "Leveringstid?")
    assert other["queue_id"] is None
    assert other["priority"] == "normal"


async def test_simulate_and_replay_change_nothing(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    billing = await queue(client, admin, "Fakturering")
    before = await new_ticket(client, admin, "Min faktura er forkert")
    assert before["queue_id"] is None  # no rules yet

    simulated = await client.post(
        f"{RULES}/simulate",
        headers=admin.headers,
        json={
            "rule_set": invoice_rules(billing),
            "message": {
                "sender": "kunde@example.dk",
                "to": ["faktura@firma.dk"],
                "subject": "Spørgsmål",
                "body": "Hej",
            },
        },
    )
    assert simulated.status_code == 200, simulated.text
    result = simulated.json()
    assert result["queue_id"] == billing
    assert result["priority"] == "high"
    assert result["rules"][0]["matched"] is True
    assert "faktura@firma.dk" in result["rules"][0]["why"]

    replayed = await client.post(
        f"{RULES}/replay",
        headers=admin.headers,
        json={
            "rule_set": invoice_rules(billing),
            "created_after": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        },
    )
    assert replayed.status_code == 200, replayed.text
    report = replayed.json()
    assert report["tickets"] >= 1
    assert report["changed"]["queue_id"] >= 1
    example = next(e for e in report["examples"] if e["ticket_id"] == before["id"])
    assert example["would_be"] == billing

    ticket = await session.get(Ticket, before["id"])
    assert ticket is not None
    await session.refresh(ticket)
    assert ticket.queue_id is None
    assert await session.scalar(select(func.count()).select_from(RuleSetVersion)) == 0


async def test_only_admins_change_rules_and_supervisors_may_look(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    agent = await make_agent("agent")
    assert (await client.get(RULES, headers=supervisor.headers)).status_code == 200
    assert (await client.get(RULES, headers=agent.headers)).status_code == 403
    forbidden = await put_rules(client, supervisor, {"rules": []})
    assert forbidden.status_code == 403


async def test_customer_messages_and_updates_run_their_own_rules(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    policy = await client.post("/api/v1/sla-policies", headers=admin.headers, json={"name": "Guld"})
    rules = {
        "rules": [
            {
                "id": "opsigelse",
                "name": "Cancellations",
                "triggers": ["message_received"],
                "when": {"field": "message.body", "op": "words", "value": ["opsige", "säga upp"]},
                "actions": [
                    {"type": "add_tags", "tags": ["opsigelse"]},
                    {"type": "set_custom_field", "name": "risiko", "value": "høj"},
                    {"type": "notify", "event": "churn.risk", "note": "Ring til kunden"},
                ],
            },
            {
                "id": "akut",
                "name": "Urgent tickets get the gold policy",
                "triggers": ["ticket_updated"],
                "when": {"field": "ticket.priority", "op": "equals", "value": "urgent"},
                "actions": [
                    {"type": "set_sla_policy", "sla_policy_id": policy.json()["id"]},
                    {"type": "remove_tags", "tags": ["opsigelse"]},
                ],
            },
            {
                "id": "spam",
                "name": "Spam",
                "when": {"field": "message.subject", "op": "regex", "value": "^(viagra|casino)"},
                "actions": [{"type": "mark_spam"}],
            },
        ]
    }
    assert (await put_rules(client, admin, rules)).status_code == 200
    ticket = await new_ticket(client, admin, "Spørgsmål om abonnement")
    assert ticket["tags"] == []
    url = f"/api/v1/tickets/{ticket['id']}"

    wrote = await client.post(
        f"{url}/messages",
        headers=admin.headers,
        json={"direction": "inbound", "body_text": "Jeg vil gerne OPSIGE mit abonnement."},
    )
    assert wrote.status_code == 201, wrote.text
    after_message = (await client.get(url, headers=admin.headers)).json()
    assert after_message["tags"] == ["opsigelse"]
    assert after_message["custom_fields"] == {"risiko": "høj"}
    event = await session.scalar(select(Event).where(Event.type == "routing.notify"))
    assert event is not None
    assert event.data["event"] == "churn.risk"

    updated = await client.patch(
        url,
        headers={**admin.headers, "If-Match": f'"{after_message["version"]}"'},
        json={"priority": "urgent"},
    )
    assert updated.status_code == 200, updated.text
    ticket_row = await session.get(Ticket, ticket["id"])
    assert ticket_row is not None
    await session.refresh(ticket_row)
    assert ticket_row.sla_policy_id == policy.json()["id"]
    assert updated.json()["tags"] == []

    spam = await new_ticket(client, admin, "CASINO bonus")
    assert spam["status"] == "closed"
    assert spam["tags"] == ["spam"]
    traces = (await client.get(url + "/routing", headers=admin.headers)).json()
    assert [t["trigger"] for t in traces] == [
        "ticket_updated",
        "message_received",
        "ticket_created",
    ]


async def test_a_rule_answers_a_web_form_from_a_template_instead_of_the_acknowledgement(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession, sending_mailbox: int
) -> None:
    support = await client.post(
        "/api/v1/queues",
        headers=admin.headers,
        json={"name": "Web", "mailbox_id": sending_mailbox, "acknowledge": True},
    )
    template = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={"name": "Flytning", "body": "Hej {{ customer.first_name }}, tak for din besked."},
    )
    rules = {
        "rules": [
            {
                "id": "flytning",
                "name": "Moving house",
                "when": {"field": "form.emne", "op": "equals", "value": "flytning"},
                "actions": [{"type": "send_auto_reply", "template_id": template.json()["id"]}],
            }
        ]
    }
    assert (await put_rules(client, admin, rules)).status_code == 200
    ticket = await new_ticket(
        client,
        admin,
        "Ny adresse",
        channel="web",
        queue_id=support.json()["id"],
        custom_fields={"emne": "flytning"},
    )
    messages = (
        await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin.headers)
    ).json()["items"]
    [answer] = [m for m in messages if m["direction"] == "outbound"]
    assert answer["kind"] == "auto_reply"
    assert answer["template_id"] == template.json()["id"]
    assert answer["body_text"] == "Hej Åsa, tak for din besked."
    assert answer["delivery"]["status"] == "queued"


async def test_traces_and_replay_examples_mask_the_numbers_they_quote(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    cpr = "010190-1234"
    found = await queue(client, admin, "CPR")
    rules = {
        "rules": [
            {
                "id": "kort",
                "name": "Card questions",
                "when": {"field": "message.body", "op": "contains", "value": "kreditkort"},
                "actions": [{"type": "add_tags", "tags": ["kort"]}],
            },
            {
                "id": "cpr",
                "name": "Identity numbers",
                "when": {"field": "message.body", "op": "regex", "value": r"\d{6}-\d{4}"},
                "actions": [{"type": "set_queue", "queue_id": found}],
            },
        ]
    }
    ticket = await new_ticket(
        client, admin, f"CPR {cpr}", message={"body_text": f"Mit CPR er {cpr}"}
    )
    assert (await put_rules(client, admin, rules)).status_code == 200

    traced = await new_ticket(
        client, admin, f"Igen {cpr}", message={"body_text": f"Mit CPR er {cpr}"}
    )
    assert traced["queue_id"] == found
    traces = await client.get(f"/api/v1/tickets/{traced['id']}/routing", headers=admin.headers)
    assert traces.status_code == 200, traces.text
    [trace] = traces.json()
    assert [(r["matched"], r["why"]) for r in trace["rules"]] == [
        (False, 'message.body is "Mit CPR er ******-**34", which does not contain "kreditkort"'),
        (True, r'message.body matches /\d{6}-\d{4}/ ("******-**34")'),
    ]

    replayed = await client.post(
        f"{RULES}/replay",
        headers=admin.headers,
        json={
            "rule_set": rules,
            "created_after": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        },
    )
    assert replayed.status_code == 200, replayed.text
    example = next(e for e in replayed.json()["examples"] if e["ticket_id"] == ticket["id"])
    assert example["subject"] == "CPR ******-**34"
    assert cpr not in traces.text + replayed.text
    # The facts kept for the trace still hold what the rules saw.
    kept = await session.scalar(
        select(RoutingTrace.facts).where(RoutingTrace.ticket_id == traced["id"])
    )
    assert kept is not None
    assert kept["values"]["message.body"] == f"Mit CPR er {cpr}"
