"""Sensitive values found at ingestion and on API input, masked in every read, revealed on
purpose with an audit trail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from app.core.config import Settings
from app.privacy.models import FindingField, MessageFinding
from app.queues.models import Queue, queue_grants
from app.tickets.models import Message
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events, build_mail
from tests.ingest.test_service import ingest_raw

TICKETS = "/api/v1/tickets"
BODY = "Hej, mit CPR er 010190-1234 og mit kort er 4111 1111 1111 1111.\nVenlig hilsen Søren"


async def _mail_ticket(session: AsyncSession) -> tuple[int, int]:
    """A ticket from a mail with a CPR number in its subject and a CPR and card number in its
    body; returns the ticket's and the message's ids."""
    outcome = await ingest_raw(session, build_mail(subject="CPR 010190-1234", body=BODY))
    assert outcome.ticket_id is not None
    message_id = await session.scalar(
        select(Message.id).where(Message.ticket_id == outcome.ticket_id)
    )
    assert message_id is not None
    return outcome.ticket_id, message_id


async def _messages(client: httpx.AsyncClient, caller: Caller, ticket_id: int) -> list[Any]:
    response = await client.get(f"{TICKETS}/{ticket_id}/messages", headers=caller.headers)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def test_a_mail_s_numbers_are_stored_as_spans_and_masked_for_every_role(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    ticket_id, message_id = await _mail_ticket(session)
    findings = list(
        await session.scalars(select(MessageFinding).where(MessageFinding.message_id == message_id))
    )
    spans = {(f.field, f.kind, f.start, f.end) for f in findings}
    cpr_at = BODY.index("010190")
    card_at = BODY.index("4111")
    assert (FindingField.body_text, "dk_cpr", cpr_at, cpr_at + 11) in spans
    assert (FindingField.body_text, "payment_card", card_at, card_at + 19) in spans
    assert (FindingField.subject, "dk_cpr", 4, 15) in spans

    [message] = await _messages(client, admin, ticket_id)
    assert "010190-1234" not in str(message)
    assert "4111 1111 1111 1111" not in str(message)
    assert "mit CPR er ******-**34 og mit kort er **** **** **** 1111." in message["body_text"]
    assert message["subject"] == "CPR ******-**34"
    by_kind = {(f["field"], f["kind"]): f for f in message["findings"]}
    assert by_kind["body_text", "dk_cpr"]["masked"] == "******-**34"
    assert by_kind["body_text", "payment_card"]["masked"] == "**** **** **** 1111"

    ticket = await client.get(
        f"{TICKETS}/{ticket_id}", headers=admin.headers, params={"include": "messages"}
    )
    assert ticket.json()["subject"] == "CPR ******-**34"
    assert "010190-1234" not in ticket.text
    customer_id = ticket.json()["customer_id"]
    history = await client.get(f"/api/v1/customers/{customer_id}/tickets", headers=admin.headers)
    assert history.status_code == 200, history.text
    assert "010190-1234" not in history.text
    assert "******-**34" in history.text


async def test_api_input_is_scanned_too(client: httpx.AsyncClient, admin: Caller) -> None:
    created = await client.post(
        TICKETS,
        headers=admin.headers,
        json={
            "subject": "Kort 5555 5555 5555 4444",
            "customer": {"email": "kunde@example.dk"},
            "message": {
                "body_text": "IBAN DK50 0040 0440 1162 43",
                "body_html": "<p>IBAN <b>DK50 0040 0440 1162 43</b></p>",
            },
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["subject"] == "Kort **** **** **** 4444"
    note = await client.post(
        f"{TICKETS}/{created.json()['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Kundens personnummer: 811218-9876", "public": False},
    )
    assert note.status_code == 201, note.text
    assert note.json()["body_text"] == "Kundens personnummer: ******-**76"
    [first, _] = await _messages(client, admin, created.json()["id"])
    assert first["body_text"] == "IBAN DK** **** **** **** 43"
    assert first["body_html"] == "<p>IBAN <b>DK** **** **** **** 43</b></p>"


async def test_a_supervisor_reveals_with_a_reason_and_it_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, make_agent: MakeAgent
) -> None:
    ticket_id, message_id = await _mail_ticket(session)
    supervisor = await make_agent("supervisor")
    [message] = await _messages(client, supervisor, ticket_id)
    cpr = next(
        f for f in message["findings"] if f["field"] == "body_text" and f["kind"] == "dk_cpr"
    )
    response = await client.post(
        f"/api/v1/messages/{message_id}/reveal",
        headers=supervisor.headers,
        json={"reason": "Kunden bad os rette CPR i kontrakten", "finding_ids": [cpr["id"]]},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "message_id": message_id,
        "findings": [
            {"id": cpr["id"], "field": "body_text", "kind": "dk_cpr", "value": "010190-1234"}
        ],
    }
    [event] = await audit_events(
        client, admin, entity_type="message", entity_id=str(message_id), action="message.revealed"
    )
    assert event["actor_agent_id"] == supervisor.id
    assert event["after"]["reason"] == "Kunden bad os rette CPR i kontrakten"
    assert event["after"]["findings"] == [{"id": cpr["id"], "field": "body_text", "kind": "dk_cpr"}]
    assert "010190-1234" not in str(event)

    everything = await client.post(
        f"/api/v1/messages/{message_id}/reveal", headers=admin.headers, json={"reason": "Revision"}
    )
    assert {f["value"] for f in everything.json()["findings"]} == {
        "010190-1234",
        "4111 1111 1111 1111",
    }


async def test_reveal_is_refused_without_a_reason_to_partners_and_to_agents_by_default(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticket_id, message_id = await _mail_ticket(session)
    url = f"/api/v1/messages/{message_id}/reveal"
    for reason in ("", "   "):
        blank = await client.post(url, headers=admin.headers, json={"reason": reason})
        assert blank.status_code == 422
    missing = await client.post(url, headers=admin.headers, json={})
    assert missing.status_code == 422
    unknown = await client.post(
        url, headers=admin.headers, json={"reason": "x", "finding_ids": [0]}
    )
    assert unknown.status_code == 422

    queue = Queue(name="Partner")
    session.add(queue)
    await session.flush()
    partner = await make_agent("external")
    await session.execute(queue_grants.insert().values(queue_id=queue.id, agent_id=partner.id))
    await client.patch(
        f"{TICKETS}/{ticket_id}",
        headers={**admin.headers, "If-Match": "*"},
        json={"queue_id": queue.id},
    )
    assert len(await _messages(client, partner, ticket_id)) == 1
    external = await client.post(url, headers=partner.headers, json={"reason": "Nysgerrig"})
    assert external.status_code == 403

    agent = await make_agent("agent")
    refused = await client.post(url, headers=agent.headers, json={"reason": "Opfølgning"})
    assert refused.status_code == 403
    monkeypatch.setattr(settings, "agents_may_reveal", True)
    allowed = await client.post(url, headers=agent.headers, json={"reason": "Opfølgning"})
    assert allowed.status_code == 200, allowed.text
    still_not_partners = await client.post(url, headers=partner.headers, json={"reason": "x"})
    assert still_not_partners.status_code == 403
    events = await audit_events(client, admin, action="message.revealed", entity_id=str(message_id))
    assert [e["actor_agent_id"] for e in events] == [agent.id]


async def test_configured_patterns_are_managed_by_admins_and_mask_later_messages(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    url = "/api/v1/privacy/patterns"
    bad = await client.post(
        url, headers=admin.headers, json={"name": "konto", "label": "Konto", "regex": "(unclosed"}
    )
    assert bad.status_code == 422
    empty = await client.post(
        url, headers=admin.headers, json={"name": "konto", "label": "Konto", "regex": "x*"}
    )
    assert empty.status_code == 422
    supervisor = await make_agent("supervisor")
    body = {"name": "konto", "label": "Kontonummer", "regex": r"\b\d{4}-\d{10}\b"}
    assert (await client.post(url, headers=supervisor.headers, json=body)).status_code == 403
    created = await client.post(url, headers=admin.headers, json=body)
    assert created.status_code == 201, created.text
    assert (await client.post(url, headers=admin.headers, json=body)).status_code == 409
    pattern = created.json()

    ticket = await client.post(
        TICKETS,
        headers=admin.headers,
        json={
            "subject": "Overførsel",
            "customer": {"email": "konto@example.dk"},
            "message": {"body_text": "Konto 1234-5678901234, tak"},
        },
    )
    [message] = await _messages(client, admin, ticket.json()["id"])
    assert message["body_text"] == "Konto ****-********34, tak"
    assert [f["kind"] for f in message["findings"]] == ["custom:konto"]

    off = await client.patch(
        f"{url}/{pattern['id']}",
        headers={**admin.headers, "If-Match": f'"{pattern["version"]}"'},
        json={"enabled": False},
    )
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    later = await client.post(
        f"{TICKETS}/{ticket.json()['id']}/messages",
        headers=admin.headers,
        json={"body_text": "Konto 1234-5678901234 igen", "public": False},
    )
    assert later.json()["findings"] == []
    listed = await client.get(url, headers=admin.headers)
    assert [p["name"] for p in listed.json()["items"]] == ["konto"]
    gone = await client.delete(f"{url}/{pattern['id']}", headers={**admin.headers, "If-Match": "*"})
    assert gone.status_code == 204
    [first, _] = await _messages(client, admin, ticket.json()["id"])
    assert "5678901234" not in first["body_text"]
    actions = [
        e["action"] for e in await audit_events(client, admin, entity_type="privacy_pattern")
    ]
    assert actions == [
        "privacy_pattern.deleted",
        "privacy_pattern.updated",
        "privacy_pattern.created",
    ]


async def test_digits_written_as_character_references_are_masked_in_html(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    created = await client.post(
        TICKETS,
        headers=admin.headers,
        json={
            "subject": "Hej",
            "customer": {"email": "entity@example.dk"},
            "message": {
                "body_text": "Se HTML",
                "body_html": "<p>CPR 0101&#57;0-1234, &#x30;&#x31;0190-1234, "
                "kort 4111&nbsp;1111&nbsp;1111&nbsp;1111</p>",
            },
        },
    )
    assert created.status_code == 201, created.text
    [message] = await _messages(client, admin, created.json()["id"])
    assert message["body_html"] == (
        "<p>CPR ******-**34, ******-**34, kort ****&nbsp;****&nbsp;****&nbsp;1111</p>"
    )


async def test_a_pattern_too_slow_for_a_text_masks_all_of_it_and_is_logged(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    pattern = {"name": "slow", "label": "Slow", "regex": r"(a+)+b"}
    assert (
        await client.post("/api/v1/privacy/patterns", headers=admin.headers, json=pattern)
    ).status_code == 201
    with capture_logs() as logs:
        created = await client.post(
            TICKETS,
            headers=admin.headers,
            json={
                "subject": "Langsom",
                "customer": {"email": "slow@example.dk"},
                "message": {"body_text": "a" * 5000},
            },
        )
    assert created.status_code == 201, created.text
    [message] = await _messages(client, admin, created.json()["id"])
    assert message["body_text"] == "*" * 4998 + "aa"
    assert [(f["field"], f["kind"]) for f in message["findings"]] == [("body_text", "custom:slow")]
    warnings = [e for e in logs if e["event"] == "privacy_pattern_timed_out"]
    assert [(e["pattern"], e["text"]) for e in warnings] == [
        ("slow", f"message {message['id']} body_text")
    ]


async def test_custom_fields_and_customer_attributes_are_masked_in_every_answer(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    customer = await client.post(
        "/api/v1/customers",
        headers=admin.headers,
        json={
            "name": "Åse",
            "emails": ["attributter@example.dk"],
            "attributes": {"iban": "DK50 0040 0440 1162 43", "tier": "gold", "age": 41},
        },
    )
    assert customer.status_code == 201, customer.text
    masked_attributes = {"iban": "DK** **** **** **** 43", "tier": "gold", "age": 41}
    assert customer.json()["attributes"] == masked_attributes
    read = await client.get(f"/api/v1/customers/{customer.json()['id']}", headers=admin.headers)
    assert read.json()["attributes"] == masked_attributes

    created = await client.post(
        TICKETS,
        headers=admin.headers,
        json={
            "subject": "Felter",
            "customer": {"id": customer.json()["id"]},
            "custom_fields": {"cpr": "CPR 010190-1234", "cards": ["4111 1111 1111 1111"]},
            "message": {"body_text": "Hej"},
        },
    )
    assert created.status_code == 201, created.text
    masked_fields = {"cpr": "CPR ******-**34", "cards": ["**** **** **** 1111"]}
    assert created.json()["custom_fields"] == masked_fields
    ticket = await client.get(
        f"{TICKETS}/{created.json()['id']}", headers=admin.headers, params={"include": "customer"}
    )
    assert ticket.json()["custom_fields"] == masked_fields
    assert ticket.json()["included"]["customers"][str(customer.json()["id"])]["attributes"] == (
        masked_attributes
    )
    listed = await client.get(TICKETS, headers=admin.headers)
    assert "010190-1234" not in listed.text
    assert "4111 1111 1111 1111" not in listed.text
