"""A data subject's export (Art. 15) and erasure (Art. 17), on a world that holds the person in
every way Ticketry can: mail ingested with an identity number and an attachment, raw and
unprocessed mail, a reply in the outbox with a refused copy, webhook deliveries, routing
traces, audit events, a stored idempotent answer, a follow-up note, a copy on another
customer's ticket.

The erasure test searches EVERY text, varchar, array, JSON and bytea column of EVERY table
(from information_schema) for the person's name, addresses, phone, numbers and identity number:
a table added later without erasure support fails it."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import event, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.attachments.models import Attachment
from app.audit.models import AuditRedaction
from app.auth.schemas import system_principal
from app.customers import service as customers
from app.customers.models import Customer
from app.customers.schemas import CustomerCreate
from app.events.models import Event
from app.gdpr import service as subject_rights
from app.ingest import service as ingest
from app.ingest.models import InboundMail
from app.outbound.models import OutboundMail
from app.tickets import service as tickets
from app.tickets.models import Channel, Message, MessageDirection, Ticket
from app.tickets.schemas import CustomerRef, FirstMessage, TicketCreate
from app.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events, build_mail
from tests.ingest.test_service import ingest_raw

API = "/api/v1"
NAME = "Birgitte Ørsted-Vang"
EMAIL = "birgitte.orsted@example.dk"
OTHER_EMAIL = "b.vang@postkasse.dk"
PHONE = "+45 31 41 59 26"
CPR = "010190-1234"
CRM_ID = "K-778812"
CUSTOMER_NUMBER = "KN-55501"
PDF = b"%PDF-1.4 loenseddel for birgitte.orsted@example.dk"
NEEDLES = [NAME, EMAIL, OTHER_EMAIL, PHONE, CPR, CRM_ID, CUSTOMER_NUMBER]
REASON = "Request by letter of 2026-11-20, case 4711"
OTHER_SUBJECT = f"Anden kunde, henvist af {NAME}"
OTHER_NOTE = f"Ole kender {NAME} (CPR {CPR}) fra sagen."


@dataclass
class World:
    customer_id: int
    mail_ticket_id: int
    api_ticket_id: int
    other_customer_id: int
    other_ticket_id: int


async def _post(
    client: httpx.AsyncClient, caller: Caller, path: str, body: Any, **headers: str
) -> Any:
    response = await client.post(f"{API}{path}", headers=caller.headers | headers, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def build_world(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, agent: Caller, mailbox: int
) -> World:
    queue = await _post(
        client,
        admin,
        "/queues",
        {"name": "Løn", "inbound_addresses": ["loen@firma.dk"], "mailbox_id": mailbox},
    )
    rules = {
        "rules": [
            {
                "id": "loen",
                "name": "Pay slips",
                "when": {
                    "field": "message.subject",
                    "op": "words",
                    "value": ["lønseddel", "adresseændring"],
                },
                "actions": [
                    {"type": "add_tags", "tags": ["løn"]},
                    {"type": "notify_email", "address": "vagt@firma.dk"},
                ],
            }
        ]
    }
    assert (await client.put(f"{API}/rules", headers=admin.headers, json=rules)).status_code == 200
    customer = await _post(
        client,
        agent,
        "/customers",
        {
            "name": NAME,
            "emails": [EMAIL, OTHER_EMAIL],
            "phone": PHONE,
            "customer_number": CUSTOMER_NUMBER,
            "external_ids": {"crm": CRM_ID},
            "attributes": {"cpr": CPR},
        },
        **{"Idempotency-Key": "kunde-1"},
    )
    outcome = await ingest_raw(
        session,
        build_mail(
            sender=f"{NAME} <{EMAIL}>",
            to="loen@firma.dk",
            subject="Min lønseddel",
            body=f"Hej, mit CPR er {CPR}. Ring på {PHONE}.\nVenlig hilsen {NAME}",
            attachment=("lønseddel.pdf", PDF),
        ),
    )
    assert outcome.ticket_id is not None
    # A mail stored raw and not processed yet, from their other address.
    await ingest.receive(
        session, build_mail(sender=OTHER_EMAIL, message_id="<m2@postkasse.dk>"), source="imap"
    )
    await _post(
        client,
        agent,
        f"/tickets/{outcome.ticket_id}/messages",
        {"body_text": f"Kære {NAME}, vi ringer på {PHONE}.", "cc": [OTHER_EMAIL]},
    )
    await session.execute(
        update(OutboundMail)
        .where(OutboundMail.ticket_id == outcome.ticket_id)
        .values(refused_recipients={OTHER_EMAIL: "550 unknown"}, last_error=f"{OTHER_EMAIL}: 550")
    )
    follow_up = await client.put(
        f"{API}/tickets/{outcome.ticket_id}/follow-up",
        headers=agent.headers,
        json={"in": "P3D", "note": f"Ring til {NAME} på {PHONE}"},
    )
    assert follow_up.status_code == 200, follow_up.text
    api_ticket = await _post(
        client,
        agent,
        "/tickets",
        {
            "subject": f"Adresseændring for {NAME}",
            "customer": {"id": customer["id"]},
            "message": {"body_text": f"Ny adresse, CPR {CPR}"},
            "queue_id": queue["id"],
            "custom_fields": {"kontakt": PHONE, "cpr": CPR},
        },
        **{"Idempotency-Key": "sag-1"},
    )
    lookup = await client.get(
        f"{API}/customers/lookup", headers=agent.headers, params={"email": EMAIL}
    )
    assert lookup.status_code == 200
    other = await _post(
        client,
        agent,
        "/tickets",
        {
            "subject": OTHER_SUBJECT,
            "customer": {"email": "ole@example.no", "name": "Ole Nordmann"},
            "message": {"body_text": "Hei, Ole her."},
        },
    )
    await _post(
        client,
        agent,
        f"/tickets/{other['id']}/messages",
        {"body_text": "Svar til Ole", "cc": [EMAIL]},
    )
    # Someone else's records that name the person: an agent's note, and a mail the person
    # sent into that ticket from their address.
    await _post(client, agent, f"/tickets/{other['id']}/messages", {"body_text": OTHER_NOTE})
    session.add(
        Message(
            ticket_id=other["id"],
            direction=MessageDirection.inbound,
            is_public=True,
            channel=Channel.email,
            from_address=OTHER_EMAIL,
            body_text="Jeg er vidne i Oles sag.",
        )
    )
    await session.flush()
    webhook = Webhook(url="https://hooks.example.test/in", event_types=["*"], secret_encrypted="x")
    session.add(webhook)
    await session.flush()
    for event_id in await session.scalars(select(Event.id)):
        session.add(
            WebhookDelivery(webhook_id=webhook.id, event_id=event_id, last_error=f"to {EMAIL}")
        )
    await session.flush()
    return World(
        customer_id=customer["id"],
        mail_ticket_id=outcome.ticket_id,
        api_ticket_id=api_ticket["id"],
        other_customer_id=other["customer_id"],
        other_ticket_id=other["id"],
    )


async def traces(session: AsyncSession, needles: list[str]) -> set[str]:
    """``table.column`` of every place any needle is found, case-insensitively: every text,
    varchar, array and JSON column as text, every bytea column as bytes."""
    columns = await session.execute(
        text(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
            "AND c.data_type IN ('text', 'character varying', 'character', 'ARRAY', 'jsonb', "
            "'json', 'bytea')"
        )
    )
    found = set()
    for table, column, data_type in columns.all():
        if data_type == "bytea":
            values = await session.scalars(text(f'SELECT "{column}" FROM "{table}"'))  # noqa: S608
            for value in values:
                if value is not None and _bytes_mention(bytes(value), needles):
                    found.add(f"{table}.{column}")
            continue
        matches = await session.scalar(
            text(
                f'SELECT count(*) FROM "{table}" '  # noqa: S608 - names from the catalogue
                f'WHERE lower("{column}"::text) LIKE ANY(:patterns)'
            ),
            {"patterns": [f"%{needle.lower()}%" for needle in needles]},
        )
        if matches:
            found.add(f"{table}.{column}")
    return found


def _bytes_mention(value: bytes, needles: list[str]) -> bool:
    lowered = value.lower()
    return any(
        form in lowered
        for needle in needles
        for form in (needle.lower().encode(), needle.lower().encode("latin-1", "ignore"))
        if form
    )


async def test_erasure_leaves_no_trace_in_any_column_of_any_table(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    sending_mailbox: int,
) -> None:
    agent = await make_agent("agent")
    world = await build_world(client, session, admin, agent, sending_mailbox)
    before = await traces(session, NEEDLES)
    # The search finds the person where the world put them (it can fail).
    assert {
        "customers.name",
        "customer_emails.email",
        "messages.body_text",
        "messages.cc_addresses",
        "blobs.content",
        "inbound_mails.sender",
        "events.data",
        "audit_events.after",
        "idempotency_records.body",
        "ticket_follow_ups.note",
        "routing_traces.facts",
        "outbound_mails.refused_recipients",
        "outbound_mails.subject",
        "webhook_deliveries.last_error",
    } <= before
    other_before = await client.get(
        f"{API}/customers/{world.other_customer_id}", headers=admin.headers
    )
    other_messages_before = await client.get(
        f"{API}/tickets/{world.other_ticket_id}/messages", headers=admin.headers
    )

    response = await client.post(
        f"{API}/customers/{world.customer_id}/erase", headers=admin.headers, json={"reason": REASON}
    )

    assert response.status_code == 200, response.text
    erased = response.json()["erased"]
    assert erased["customers"] == 1
    assert erased["tickets"] == 3, "their 2 anonymised, another's subject masked"
    assert erased["customer_emails"] == 2
    assert erased["messages"] >= 6, "4 of theirs deleted, a copy and a note elsewhere changed"
    assert erased["attachments"] == 1
    assert erased["inbound_mails"] == 2
    assert erased["audit_events"] > 0
    assert erased["events"] > 0
    assert await traces(session, NEEDLES) == set()

    # Statistics stay: the customer and their tickets, without content.
    tickets = (
        await session.scalars(
            select(Ticket).where(Ticket.customer_id == world.customer_id).order_by(Ticket.id)
        )
    ).all()
    assert [t.id for t in tickets] == [world.mail_ticket_id, world.api_ticket_id]
    assert {t.subject for t in tickets} == {"[erased]"}
    assert all(t.tags == [] and t.queue_id is not None for t in tickets)
    assert (
        await session.scalar(
            select(Message.id).where(Message.ticket_id.in_([t.id for t in tickets]))
        )
        is None
    )
    customer = await session.get(Customer, world.customer_id)
    assert customer is not None
    assert customer.name is None

    # Everyone else is untouched, but for the person's address among the recipients, their
    # mail into another's ticket, and their name and numbers masked where others wrote them
    # (as many characters: the findings' offsets into the text stay right).
    other_after = await client.get(
        f"{API}/customers/{world.other_customer_id}", headers=admin.headers
    )
    assert _without_volatile(other_after.json()) == _without_volatile(other_before.json())
    messages_after = await client.get(
        f"{API}/tickets/{world.other_ticket_id}/messages", headers=admin.headers
    )
    old, new = other_messages_before.json()["items"], messages_after.json()["items"]
    assert [m["body_text"] for m in old[:2]] == [m["body_text"] for m in new[:2]]
    assert old[1]["cc"] == [EMAIL]
    assert new[1]["cc"] == []
    assert len(old) == 4
    assert len(new) == 3, "the mail from their address went"
    masked = OTHER_NOTE.replace(NAME, "*" * len(NAME)).replace(CPR, "*" * len(CPR))
    note = await session.scalar(select(Message.body_text).where(Message.id == new[2]["id"]))
    assert note == masked
    other_ticket = await session.get(Ticket, world.other_ticket_id)
    assert other_ticket is not None
    await session.refresh(other_ticket)
    assert other_ticket.subject == OTHER_SUBJECT.replace(NAME, "*" * len(NAME))

    # The audit log and the event feed say what happened, without personal data.
    [event] = await audit_events(
        client,
        admin,
        entity_type="customer",
        entity_id=str(world.customer_id),
        action="customer.erased",
    )
    assert event["after"]["erased"] == erased
    assert event["after"]["reason"] == REASON
    assert event["after"]["audit_redactions"]["count"] == erased["audit_events"]
    redacted = await session.scalar(
        select(AuditRedaction.redacted_by_event_id)
        .where(AuditRedaction.redacted_by_event_id == event["id"])
        .limit(1)
    )
    assert redacted == event["id"]
    emitted = await session.scalar(select(Event).where(Event.type == "customer.erased"))
    assert emitted is not None
    assert emitted.data == {"schema_version": 1, "customer_id": world.customer_id, "erased": erased}


def _without_volatile(read: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in read.items() if k not in {"updated_at", "version"}}


async def test_erasure_is_admin_only_and_needs_a_reason(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    customer = await _post(client, admin, "/customers", {"name": NAME, "emails": [EMAIL]})
    path = f"{API}/customers/{customer['id']}/erase"
    supervisor = await make_agent("supervisor")
    assert (
        await client.post(path, headers=supervisor.headers, json={"reason": REASON})
    ).status_code == 403
    assert (await client.post(path, headers=admin.headers, json={"reason": " "})).status_code == 422
    assert (
        await client.post(
            f"{API}/customers/999999999/erase", headers=admin.headers, json={"reason": REASON}
        )
    ).status_code == 404
    still = await client.get(f"{API}/customers/{customer['id']}", headers=admin.headers)
    assert still.json()["name"] == NAME


async def test_the_export_holds_everything_about_the_person_unmasked(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    sending_mailbox: int,
) -> None:
    agent = await make_agent("agent")
    supervisor = await make_agent("supervisor")
    world = await build_world(client, session, admin, agent, sending_mailbox)

    response = await client.get(
        f"{API}/customers/{world.customer_id}/export",
        headers=supervisor.headers,
        params={"reason": REASON},
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    tickets = (
        await session.scalars(select(Ticket).where(Ticket.customer_id == world.customer_id))
    ).all()
    attachment = await session.scalar(
        select(Attachment).join(Message).where(Message.ticket_id == world.mail_ticket_id)
    )
    assert attachment is not None
    elsewhere = await session.scalar(
        select(Message.id).where(
            Message.ticket_id == world.other_ticket_id, Message.from_address == OTHER_EMAIL
        )
    )
    raw = (
        await session.scalars(
            select(InboundMail.id).where(
                or_(InboundMail.ticket_id == world.mail_ticket_id, InboundMail.ticket_id.is_(None))
            )
        )
    ).all()
    assert len(raw) == 2, "the mail that opened the ticket, and one not processed yet"
    # What an erasure takes as theirs is all in it: their mail on another's ticket, raw mail.
    assert names == {
        "customer.json",
        "audit.json",
        f"attachments/{attachment.id}-lønseddel.pdf",
        f"messages/{elsewhere}.json",
        *(f"mail/{mail_id}.eml" for mail_id in raw),
        *(f"tickets/{t.number}.json" for t in tickets),
    }
    assert json.loads(archive.read(f"messages/{elsewhere}.json"))["body_text"] == (
        "Jeg er vidne i Oles sag."
    )
    assert CPR.encode() in archive.read(f"mail/{min(raw)}.eml")
    customer = json.loads(archive.read("customer.json"))
    assert (customer["name"], customer["emails"], customer["phone"]) == (
        NAME,
        [EMAIL, OTHER_EMAIL],
        PHONE,
    )
    assert customer["external_ids"] == {"crm": CRM_ID}
    assert customer["attributes"] == {"cpr": CPR}, "their own numbers are not masked"
    assert archive.read(f"attachments/{attachment.id}-lønseddel.pdf") == PDF
    by_id = {t.id: json.loads(archive.read(f"tickets/{t.number}.json")) for t in tickets}
    mail_ticket = by_id[world.mail_ticket_id]
    assert mail_ticket["subject"] == "Min lønseddel"
    assert [m["direction"] for m in mail_ticket["messages"]] == ["inbound", "outbound"]
    assert CPR in mail_ticket["messages"][0]["body_text"], "their own data is not masked"
    assert mail_ticket["messages"][0]["attachments"][0]["id"] == attachment.id
    assert by_id[world.api_ticket_id]["subject"] == f"Adresseændring for {NAME}"
    assert CPR in by_id[world.api_ticket_id]["messages"][0]["body_text"]
    assert by_id[world.api_ticket_id]["custom_fields"] == {"kontakt": PHONE, "cpr": CPR}
    audit = json.loads(archive.read("audit.json"))
    about = {(e["action"], e["entity_type"], e["entity_id"]) for e in audit}
    assert ("customer.created", "customer", str(world.customer_id)) in about
    assert ("ticket.created", "ticket", str(world.mail_ticket_id)) in about
    assert ("ticket.created", "ticket", str(world.api_ticket_id)) in about
    assert any(action == "message.created" for action, _, _ in about)
    assert "Ole Nordmann" not in response.content.decode("latin-1"), "nothing of another"

    [read] = await audit_events(
        client,
        admin,
        entity_type="customer",
        entity_id=str(world.customer_id),
        action="customer.exported",
    )
    assert read["actor_agent_id"] == supervisor.id
    assert read["after"]["reason"] == REASON
    refused = await client.get(
        f"{API}/customers/{world.customer_id}/export",
        headers=agent.headers,
        params={"reason": REASON},
    )
    assert refused.status_code == 403
    no_reason = await client.get(
        f"{API}/customers/{world.customer_id}/export", headers=supervisor.headers
    )
    assert no_reason.status_code == 422


async def test_erasing_a_person_named_in_another_s_ticket_then_that_other(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    """B's ticket names A: A's erasure redacts the audit events about it, B's redacts them
    again (an event is redacted as often as people mentioned in it are erased)."""
    first = await _post(client, admin, "/customers", {"name": NAME, "emails": [EMAIL]})
    ticket = await _post(
        client,
        admin,
        "/tickets",
        {
            "subject": f"Klage over {NAME}",
            "customer": {"email": "ole@example.no", "name": "Ole Nordmann"},
            "message": {"body_text": "Ole skriver."},
            "tags": ["klage"],
        },
    )
    for customer_id in (first["id"], ticket["customer_id"]):
        response = await client.post(
            f"{API}/customers/{customer_id}/erase", headers=admin.headers, json={"reason": REASON}
        )
        assert response.status_code == 200, response.text

    twice = await session.scalar(
        select(AuditRedaction.event_id)
        .group_by(AuditRedaction.event_id)
        .having(func.count() > 1)
        .limit(1)
    )
    assert twice is not None
    assert await traces(session, [NAME, "Ole Nordmann", "ole@example.no"]) == set()


async def test_nothing_new_is_filed_under_an_erased_customer(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    customer = await _post(client, admin, "/customers", {"name": NAME, "emails": [EMAIL]})
    erased = await client.post(
        f"{API}/customers/{customer['id']}/erase", headers=admin.headers, json={"reason": REASON}
    )
    assert erased.status_code == 200, erased.text
    ticket = {"subject": "Igen", "message": {"body_text": "Hej igen."}}

    by_id = await client.post(
        f"{API}/tickets", headers=admin.headers, json=ticket | {"customer": {"id": customer["id"]}}
    )
    by_email = await _post(client, admin, "/tickets", ticket | {"customer": {"email": EMAIL}})

    assert by_id.status_code == 422, by_id.text
    assert by_id.json()["errors"][0]["pointer"] == "/body/customer/id"
    assert by_email["customer_id"] != customer["id"], "the person starts afresh"


async def test_erasure_rewrites_many_mentions_in_a_few_statements(
    session: AsyncSession, connection: AsyncConnection
) -> None:
    """Event payloads, audit events and other tickets naming the person are rewritten in
    batches, not one UPDATE per row."""
    actor = system_principal("privacy-officer")
    customer = await customers.create_customer(
        session, actor, CustomerCreate(name=NAME, emails=[EMAIL])
    )
    for number in range(25):
        await tickets.create_ticket(
            session,
            actor,
            TicketCreate(
                subject=f"Sag {number} om {NAME}",
                customer=CustomerRef(email=f"kunde{number}@example.no"),
                message=FirstMessage(body_text="Se emnet."),
            ),
        )
    updates: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE"):
            updates.append(statement.split()[1])

    event.listen(connection.sync_connection, "before_cursor_execute", count)
    try:
        erased = await subject_rights.erase_customer(session, actor, customer.id, REASON)
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", count)

    assert erased["tickets"] >= 25
    assert erased["events"] >= 25
    assert erased["audit_events"] >= 25
    by_table = Counter(updates)
    assert by_table["tickets"] <= 3
    assert by_table["events"] <= 3
    assert by_table["audit_events"] <= 2
