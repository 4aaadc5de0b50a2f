"""Replies and acknowledgements through the outbox to a real SMTP server, and the customer's
answer back into the same ticket."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.customers.models import Customer, CustomerEmail
from app.events.models import Event
from app.ingest.models import InboundMail
from app.mailboxes.models import Mailbox
from app.queues.models import Queue
from app.tickets.models import Message, ThreadMatch, Ticket
from tests.conftest import Caller, MakeAgent
from tests.helpers import build_mail
from tests.outbound.conftest import Outbox, make_mailbox
from tests.smtpserver import Received

CUSTOMER = "soren@example.dk"


async def mail_ticket(session: AsyncSession, outbox: Outbox, **mail: Any) -> tuple[int, int]:
    """A ticket opened by a customer's mail; returns (ticket id, ticket number)."""
    outcome = await outbox.mail_in(session, build_mail(**mail))
    assert outcome.ticket_id is not None
    ticket = await session.get(Ticket, outcome.ticket_id)
    assert ticket is not None
    return ticket.id, ticket.number


async def reply(
    client: httpx.AsyncClient, agent: Caller, ticket_id: int, **body: Any
) -> dict[str, Any]:
    body.setdefault("body_text", "Hej Søren,\n\nvi har rettet fakturaen.\n\nMvh\nAgnete")
    response = await client.post(
        f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers, json=body
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def message(client: httpx.AsyncClient, agent: Caller, ticket_id: int, message_id: int) -> Any:
    response = await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers)
    return next(m for m in response.json()["items"] if m["id"] == message_id)


def replies_to(outbox: Outbox, address: str) -> list[Received]:
    return [m for m in outbox.sink.to(address) if "Auto-Submitted" not in m.message]


async def test_a_reply_is_mailed_with_threading_headers_and_its_answer_threads_back(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, number = await mail_ticket(
        session, outbox, subject="Fakturaen er forkert", message_id="<first@example.dk>"
    )
    sent = await reply(client, agent, ticket_id, cc=["bogholderi@example.dk"])
    assert sent["delivery"]["status"] == "queued"
    assert sent["message_id"].startswith("<ticketry.")

    assert await outbox.worker.send_due() >= 1

    [mail] = replies_to(outbox, CUSTOMER)
    headers = mail.message
    assert headers["Message-ID"] == sent["message_id"]
    assert headers["In-Reply-To"] == "<first@example.dk>"
    assert headers["References"] == "<first@example.dk>"
    assert headers["Subject"] == f"Re: Fakturaen er forkert [#{number}]"
    assert headers["From"] == "Firma Kundeservice <support@firma.dk>"
    assert headers["Cc"] == "bogholderi@example.dk"
    assert "Auto-Submitted" not in headers
    assert sorted(mail.recipients) == ["bogholderi@example.dk", CUSTOMER]
    text = headers.get_body(("plain",))
    html = headers.get_body(("html",))
    assert text is not None
    assert "vi har rettet fakturaen" in text.get_content()
    assert html is not None
    assert "<p>Hej Søren,</p>" in html.get_content()
    delivered = await message(client, agent, ticket_id, sent["id"])
    assert delivered["delivery"]["status"] == "sent"
    assert delivered["delivery"]["attempts"] == 1
    assert "Ok: queued" in delivered["delivery"]["smtp_reply"]

    # The customer answers from a client that keeps only In-Reply-To, with a new subject.
    answer = build_mail(
        subject="Tak!",
        message_id="<answer@example.dk>",
        headers={"In-Reply-To": sent["message_id"]},
        body="Tak for hjælpen.",
    )
    outcome = await outbox.mail_in(session, answer)
    assert outcome.ticket_id == ticket_id
    assert not outcome.new_ticket
    stored = await session.scalar(
        select(Message).where(Message.message_id == "<answer@example.dk>")
    )
    assert stored is not None
    assert stored.threaded_by is ThreadMatch.token


async def test_bcc_goes_in_the_envelope_only_and_attachments_are_sent(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, _ = await mail_ticket(
        session, outbox, attachment=("faktura-æøå.pdf", b"%PDF-1.4 faktura")
    )
    original = await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers)
    existing = original.json()["items"][0]["attachments"][0]["id"]
    upload = base64.b64encode("Kreditnota for Søren".encode()).decode()
    sent = await reply(
        client,
        agent,
        ticket_id,
        bcc=["arkiv@example.dk"],
        attachments=[
            {"filename": "kreditnota.txt", "content_type": "text/plain", "content_base64": upload}
        ],
        attachment_ids=[existing],
    )
    assert sent["bcc"] == ["arkiv@example.dk"]
    await outbox.worker.send_due()

    [mail] = replies_to(outbox, "arkiv@example.dk")
    assert CUSTOMER in mail.recipients
    assert "arkiv@example.dk" not in mail.raw.decode("ascii", "replace")
    files = {part.get_filename(): part.get_content() for part in mail.message.iter_attachments()}
    assert files == {
        "kreditnota.txt": "Kreditnota for Søren",
        "faktura-æøå.pdf": b"%PDF-1.4 faktura",
    }


async def test_internal_notes_are_never_mailed(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, _ = await mail_ticket(session, outbox)
    note = await reply(client, agent, ticket_id, public=False, body_text="Kunden er sur.")
    assert note["delivery"] is None
    await outbox.worker.send_due()
    assert replies_to(outbox, CUSTOMER) == []


async def test_refused_recipients_are_a_clear_error_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, _ = await mail_ticket(session, outbox)
    blocked = Customer(name="Spammer", blocked=True)
    session.add(blocked)
    await session.flush()
    session.add(CustomerEmail(customer_id=blocked.id, email="spam@example.dk", position=0))
    await session.flush()
    cases = {
        "to": (["support@firma.dk"], "would loop"),
        "cc": (["mailer-daemon@example.dk"], "no-reply"),
        "bcc": (["spam@example.dk"], "blocked customer"),
    }
    for field, (addresses, words) in cases.items():
        response = await client.post(
            f"/api/v1/tickets/{ticket_id}/messages",
            headers=agent.headers,
            json={"body_text": "Hej", field: addresses},
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert words in problem["detail"]
        assert addresses[0] in problem["detail"]
    messages = await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers)
    assert [m["direction"] for m in messages.json()["items"]] == ["inbound"]


async def test_a_ticket_with_no_mailbox_to_send_from_is_a_conflict(
    client: httpx.AsyncClient, make_agent: MakeAgent, outbox: Outbox, session: AsyncSession
) -> None:
    agent = await make_agent("agent")
    # A second sending mailbox: with two, the service cannot guess which one to use.
    await make_mailbox(session, outbox.sink, outbox.config.secret_key, name="Salg", addresses=[])
    created = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "Telefonopkald",
            "customer": {"email": "kari@example.no"},
            "message": {"body_text": "Ringte om fakturaen"},
            "channel": "phone",
        },
    )
    assert created.status_code == 201, created.text
    response = await client.post(
        f"/api/v1/tickets/{created.json()['id']}/messages",
        headers=agent.headers,
        json={"body_text": "Hej Kari"},
    )
    assert response.status_code == 409
    assert "mailbox_id" in response.json()["detail"]


async def test_smtp_down_is_retried_and_the_mail_delivered_exactly_once(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, _ = await mail_ticket(session, outbox)
    sent = await reply(client, agent, ticket_id)
    await outbox.sink.stop()

    assert await outbox.worker.send_due() == 1
    state = (await message(client, agent, ticket_id, sent["id"]))["delivery"]
    assert state["status"] == "queued"
    assert state["attempts"] == 1
    assert "could not talk to the SMTP server" in state["last_error"]
    assert state["next_attempt_at"] is not None
    # Not due yet: nothing happens however often the worker looks.
    assert await outbox.worker.send_due() == 0

    await outbox.sink.start()
    outbox.worker.clock = lambda: utcnow() + timedelta(hours=1)
    assert await outbox.worker.send_due() >= 1
    assert await outbox.worker.send_due() == 0  # a restarted worker finds nothing to resend
    assert len(replies_to(outbox, CUSTOMER)) == 1
    state = (await message(client, agent, ticket_id, sent["id"]))["delivery"]
    assert state["status"] == "sent"
    assert state["attempts"] == 2
    assert state["last_error"] is None


async def test_a_permanent_refusal_fails_the_message_and_raises_an_event(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, _ = await mail_ticket(session, outbox)
    outbox.sink.refuse_recipients[CUSTOMER] = "550 5.1.1 <soren@example.dk>: no such user"
    sent = await reply(client, agent, ticket_id)
    await outbox.worker.send_due()

    state = (await message(client, agent, ticket_id, sent["id"]))["delivery"]
    assert state["status"] == "failed"
    assert state["attempts"] == 1
    assert "550 5.1.1" in state["last_error"]
    assert state["failed_at"] is not None
    event = await session.scalar(
        select(Event).where(Event.type == "outbound.failed", Event.entity_id == sent["id"])
    )
    assert event is not None
    assert event.data["ticket_id"] == ticket_id
    assert event.data["permanent"] is True


async def test_temporary_failures_end_as_failed_after_the_last_attempt(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    ticket_id, _ = await mail_ticket(session, outbox)
    outbox.sink.data_reply = "451 4.3.0 try again later"
    sent = await reply(client, agent, ticket_id)
    for hours in range(1, 4):
        outbox.worker.clock = lambda hours=hours: utcnow() + timedelta(days=hours)  # type: ignore[misc]
        await outbox.worker.send_due()
    state = (await message(client, agent, ticket_id, sent["id"]))["delivery"]
    assert state["status"] == "failed"
    assert state["attempts"] == outbox.config.max_attempts
    assert "451 4.3.0" in state["last_error"]


async def acknowledging(session: AsyncSession, outbox: Outbox) -> Mailbox:
    mailbox = await session.get(Mailbox, outbox.mailbox_id)
    assert mailbox is not None
    mailbox.acknowledge = True
    await session.flush()
    return mailbox


async def test_a_new_mail_is_acknowledged_once_with_its_number_and_status_link(
    client: httpx.AsyncClient, session: AsyncSession, outbox: Outbox
) -> None:
    await acknowledging(session, outbox)
    ticket_id, number = await mail_ticket(session, outbox, subject="Min pakke er ikke kommet")
    await outbox.worker.send_due()
    await outbox.worker.send_due()

    [ack] = outbox.sink.to(CUSTOMER)
    headers = ack.message
    assert headers["Auto-Submitted"] == "auto-replied"
    assert f"[#{number}]" in headers["Subject"]
    assert headers["In-Reply-To"] == "<m1@example.dk>"
    body = headers.get_body(("plain",))
    assert body is not None
    ticket = await session.get(Ticket, ticket_id)
    assert ticket is not None
    link = f"{outbox.config.public_base_url}/status/{ticket.status_token}"
    assert link in body.get_content()
    # The ticket is still waiting for a person's answer.
    assert ticket.first_response_at is None

    page = await client.get(
        f"/status/{ticket.status_token}", headers={"Accept": "application/json"}
    )
    assert page.status_code == 200
    assert page.json()["ticket_number"] == number


async def test_auto_replies_bounces_and_switched_off_mailboxes_get_no_acknowledgement(
    session: AsyncSession, outbox: Outbox
) -> None:
    mailbox = await acknowledging(session, outbox)
    automatic = [
        build_mail(
            message_id="<ooo@example.dk>",
            headers={"Auto-Submitted": "auto-replied"},
            subject="Fravær: Fakturaen er forkert",
        ),
        build_mail(sender="noreply@shop.example", message_id="<shop@example.dk>"),
        build_mail(message_id="<list@example.dk>", headers={"List-Id": "<nyheder.example.dk>"}),
    ]
    for raw in automatic:
        await outbox.mail_in(session, raw)
    stored = list(await session.scalars(select(InboundMail.auto_reply_allowed)))
    assert stored == [False, False, False]
    mailbox.acknowledge = False
    await session.flush()
    await mail_ticket(session, outbox, message_id="<person@example.dk>", subject="Hjælp")
    await outbox.worker.send_due()
    assert outbox.sink.received == []


async def test_a_reply_straight_from_a_template_is_filled_for_the_ticket(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    supervisor = await make_agent("supervisor", name="Åsa Öberg")
    template = await client.post(
        "/api/v1/templates",
        headers=supervisor.headers,
        json={
            "name": "Faktura rettet",
            "body": "Hej {{ customer.first_name }},\n\nsag {{ ticket.reference }} er løst.\n\n"
            "Mvh {{ agent.name }}",
        },
    )
    assert template.status_code == 201, template.text
    ticket_id, number = await mail_ticket(session, outbox)
    sent = await reply(
        client, supervisor, ticket_id, body_text="", template_id=template.json()["id"]
    )
    assert sent["template_id"] == template.json()["id"]
    assert sent["body_text"] == f"Hej Søren,\n\nsag [#{number}] er løst.\n\nMvh Åsa Öberg"
    await outbox.worker.send_due()
    [mail] = replies_to(outbox, CUSTOMER)
    text = mail.message.get_body(("plain",))
    assert text is not None
    assert f"sag [#{number}] er løst" in text.get_content()


async def test_a_web_form_ticket_is_acknowledged_when_its_queue_says_so(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent, outbox: Outbox
) -> None:
    agent = await make_agent("agent")
    queue = await session.get(Queue, outbox.queue_id)
    assert queue is not None

    async def web_form(email: str) -> None:
        response = await client.post(
            "/api/v1/tickets",
            headers=agent.headers,
            json={
                "subject": "Kontaktformular: ændring af adresse",
                "customer": {"email": email, "name": "Märta"},
                "message": {"body_text": "Jeg er flyttet."},
                "channel": "web",
                "queue_id": outbox.queue_id,
            },
        )
        assert response.status_code == 201, response.text

    await web_form("marta@example.se")
    queue.acknowledge = True
    await session.flush()
    await web_form("marta2@example.se")
    await outbox.worker.send_due()
    assert outbox.sink.to("marta@example.se") == []
    [ack] = outbox.sink.to("marta2@example.se")
    assert ack.message["Auto-Submitted"] == "auto-replied"
