"""Mail through the whole pipeline into tickets, on the real database (no IMAP here: the raw
bytes are handed to `receive` as the mailbox reader would)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import ClosedTicketReply
from app.core.message_ids import outgoing_message_id
from app.ingest import service as ingest
from app.ingest.models import InboundMail, InboundStatus
from app.ingest.pipeline import Policy
from app.queues.models import Queue
from app.tickets.models import Channel, Message, MessageDirection, Ticket
from tests.conftest import Caller
from tests.helpers import build_mail

SECRET = "s" * 48
CONFIG = ingest.IngestConfig(
    secret_key=SECRET,
    policy=Policy(
        ticket_number_prefix="#",
        reply_to_closed=ClosedTicketReply.reopen,
        auto_reply_limit_per_day=3,
    ),
    max_bytes=5 * 1024 * 1024,
)


async def ingest_raw(
    session: AsyncSession, raw: bytes, config: ingest.IngestConfig = CONFIG
) -> ingest.Outcome:
    inbound_id = await ingest.receive(session, raw, source="imap")
    return await ingest.process(session, inbound_id, config)


async def messages_of(session: AsyncSession, ticket_id: int) -> list[Message]:
    return list(
        await session.scalars(
            select(Message).where(Message.ticket_id == ticket_id).order_by(Message.id)
        )
    )


async def test_a_new_mail_becomes_a_ticket_in_the_addressed_queue(session: AsyncSession) -> None:
    queue = Queue(name="Fakturering", inbound_addresses=["faktura@firma.dk"])
    session.add(queue)
    await session.flush()
    raw = build_mail(to="Faktura <faktura@firma.dk>", attachment=("kvittering æøå.pdf", b"%PDF-1"))
    outcome = await ingest_raw(session, raw)
    assert outcome.status is InboundStatus.processed
    assert outcome.new_ticket
    ticket = await session.get(Ticket, outcome.ticket_id)
    assert ticket is not None
    assert ticket.subject == "Fakturaen er forkert"
    assert ticket.channel is Channel.email
    assert ticket.queue_id == queue.id
    [message] = await messages_of(session, ticket.id)
    assert message.direction is MessageDirection.inbound
    assert message.from_address == "soren@example.dk"
    assert message.threaded_by.value == "new_ticket"
    assert message.message_id == "<m1@example.dk>"
    assert message.sent_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    inbound = await session.get(InboundMail, outcome.inbound_id)
    assert inbound is not None
    assert inbound.auto_reply_allowed is True
    assert inbound.sender == "soren@example.dk"


async def test_replies_thread_by_in_reply_to_and_by_our_token(session: AsyncSession) -> None:
    first = await ingest_raw(session, build_mail())
    reply = build_mail(
        subject="Nyt emne helt",
        message_id="<m2@example.dk>",
        headers={"In-Reply-To": "<m1@example.dk>", "References": "<m1@example.dk>"},
    )
    second = await ingest_raw(session, reply)
    assert (second.ticket_id, second.new_ticket) == (first.ticket_id, False)

    assert first.ticket_id is not None
    ours = Message(
        ticket_id=first.ticket_id,
        direction=MessageDirection.outbound,
        is_public=True,
        channel=Channel.email,
        body_text="Svar",
        to_addresses=[],
        cc_addresses=[],
        references=[],
    )
    session.add(ours)
    await session.flush()
    ours.message_id = outgoing_message_id(SECRET, first.ticket_id, ours.id, "firma.dk")
    await session.flush()
    answer = build_mail(
        subject="Tak!", message_id="<m3@example.dk>", headers={"In-Reply-To": ours.message_id}
    )
    third = await ingest_raw(session, answer)
    assert third.ticket_id == first.ticket_id
    messages = await messages_of(session, first.ticket_id)
    assert [m.threaded_by.value for m in messages if m.threaded_by] == [
        "new_ticket",
        "in_reply_to",
        "token",
    ]


async def test_one_mail_to_two_mailboxes_is_one_ticket_and_a_reused_id_is_not_dropped(
    session: AsyncSession,
) -> None:
    raw = build_mail()
    first = await ingest_raw(session, b"Delivered-To: support@firma.dk\r\n" + raw)
    again = await ingest_raw(session, b"Delivered-To: salg@firma.dk\r\n" + raw)
    assert again.status is InboundStatus.duplicate
    assert again.ticket_id == first.ticket_id
    reused = await ingest_raw(session, build_mail(body="Et helt andet spørgsmål"))
    assert reused.status is InboundStatus.processed
    assert reused.ticket_id != first.ticket_id


async def test_auto_replies_are_kept_as_notes_and_never_answered(session: AsyncSession) -> None:
    first = await ingest_raw(session, build_mail())
    ooo = build_mail(
        subject="Automatisk svar: Fakturaen er forkert",
        message_id="<ooo@example.dk>",
        headers={"Auto-Submitted": "auto-replied", "In-Reply-To": "<m1@example.dk>"},
    )
    outcome = await ingest_raw(session, ooo)
    assert outcome.ticket_id == first.ticket_id
    inbound = await session.get(InboundMail, outcome.inbound_id)
    assert inbound is not None
    assert inbound.kind is not None
    assert inbound.kind.value == "auto_reply"
    assert inbound.auto_reply_allowed is False
    last = (await messages_of(session, first.ticket_id or 0))[-1]
    assert last.is_public is False
    assert last.kind.value == "auto_reply"


def _bounce_of(message_id: str) -> bytes:
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.dk>\r\n"
        b"To: support@firma.dk\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-" + message_id.strip("<>").encode() + b">\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.dk\r\n\r\nFinal-Recipient: rfc822; soren@example.dk\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\nSubject: Re: Fakturaen er forkert\r\n"
        b"--b--\r\n"
    )


async def test_a_bounce_joins_the_ticket_whose_reply_bounced(session: AsyncSession) -> None:
    first = await ingest_raw(session, build_mail())
    assert first.ticket_id is not None
    ours = Message(
        ticket_id=first.ticket_id,
        direction=MessageDirection.outbound,
        is_public=True,
        channel=Channel.email,
        body_text="Svar",
        to_addresses=[],
        cc_addresses=[],
        references=[],
    )
    session.add(ours)
    await session.flush()
    ours.message_id = outgoing_message_id(SECRET, first.ticket_id, ours.id, "firma.dk")
    await session.flush()
    outcome = await ingest_raw(session, _bounce_of(ours.message_id))
    assert outcome.ticket_id == first.ticket_id
    inbound = await session.get(InboundMail, outcome.inbound_id)
    assert inbound is not None
    assert inbound.kind is not None
    assert inbound.kind.value == "bounce"
    last = (await messages_of(session, first.ticket_id))[-1]
    assert last.is_public is False


async def test_a_bounce_or_auto_reply_that_answers_nothing_of_ours_opens_no_ticket(
    session: AsyncSession,
) -> None:
    # The bounced Message-ID is not one of our signed ones: anyone can write such a part.
    forged = await ingest_raw(session, _bounce_of("<someone-elses@firma.dk>"))
    ooo = await ingest_raw(
        session,
        build_mail(message_id="<ooo2@example.dk>", headers={"Auto-Submitted": "auto-replied"}),
    )
    for outcome in (forged, ooo):
        assert outcome.status is InboundStatus.processed
        assert outcome.ticket_id is None
    assert await session.scalar(select(func.count()).select_from(Ticket)) == 0


async def test_automatic_answers_are_rate_limited_per_sender(session: AsyncSession) -> None:
    allowed = []
    for number in range(5):
        outcome = await ingest_raw(
            session, build_mail(message_id=f"<r{number}@example.dk>", body=f"Spørgsmål {number}")
        )
        inbound = await session.get(InboundMail, outcome.inbound_id)
        assert inbound is not None
        allowed.append(inbound.auto_reply_allowed)
    assert allowed == [True, True, True, False, False]


async def test_unparseable_mail_is_quarantined_listed_and_retried(
    session: AsyncSession, client: httpx.AsyncClient, admin: Caller
) -> None:
    tiny = ingest.IngestConfig(secret_key=SECRET, policy=CONFIG.policy, max_bytes=100)
    outcome = await ingest_raw(session, build_mail(), tiny)
    assert outcome.status is InboundStatus.quarantined

    listed = await client.get("/api/v1/ingest/quarantine", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == outcome.inbound_id
    assert "limit" in item["quarantine_reason"]
    raw = await client.get(
        f"/api/v1/ingest/inbound/{outcome.inbound_id}/raw",
        headers=admin.headers,
        params={"reason": "Why was it quarantined?"},
    )
    assert raw.status_code == 200
    assert raw.content == build_mail()

    # The service's limit (TICKETRY_MAX_MAIL_MB) is far above the 100 bytes used above.
    retried = await client.post(
        f"/api/v1/ingest/quarantine/{outcome.inbound_id}/retry", headers=admin.headers
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "processed"
    assert retried.json()["ticket_id"] is not None
    again = await client.post(
        f"/api/v1/ingest/quarantine/{outcome.inbound_id}/retry", headers=admin.headers
    )
    assert again.status_code == 409


async def test_weak_match_suggests_a_link_and_merge_threads_later_replies(
    session: AsyncSession, client: httpx.AsyncClient, admin: Caller
) -> None:
    first = await ingest_raw(session, build_mail())
    assert first.ticket_id is not None
    number = (await session.get(Ticket, first.ticket_id)).number  # type: ignore[union-attr]
    stranger = build_mail(
        subject=f"[#{number}] kan I hjælpe?", sender="ukendt@andet.dk", message_id="<s1@andet.dk>"
    )
    weak = await ingest_raw(session, stranger)
    assert weak.new_ticket
    links = await client.get(f"/api/v1/tickets/{weak.ticket_id}/links", headers=admin.headers)
    assert links.status_code == 200, links.text
    [link] = links.json()
    assert link["kind"] == "possible_thread"
    assert link["other_ticket_id"] == first.ticket_id
    assert "does not know" in link["reason"]

    merged = await client.post(
        f"/api/v1/tickets/{weak.ticket_id}/merge",
        headers=admin.headers,
        json={"into_ticket_id": first.ticket_id},
    )
    assert merged.status_code == 200, merged.text
    source = (await client.get(f"/api/v1/tickets/{weak.ticket_id}", headers=admin.headers)).json()
    assert source["status"] == "closed"
    assert source["merged_into_id"] == first.ticket_id
    target_messages = await client.get(
        f"/api/v1/tickets/{first.ticket_id}/messages", headers=admin.headers
    )
    assert len(target_messages.json()["items"]) == 2
    follow = build_mail(
        sender="ukendt@andet.dk",
        message_id="<s2@andet.dk>",
        subject="Re: hjælp",
        headers={"In-Reply-To": "<s1@andet.dk>"},
    )
    later = await ingest_raw(session, follow)
    assert later.ticket_id == first.ticket_id


async def test_reply_to_a_closed_ticket_can_open_a_follow_up(session: AsyncSession) -> None:
    first = await ingest_raw(session, build_mail())
    ticket = await session.get(Ticket, first.ticket_id)
    assert ticket is not None
    ticket.status = ticket.status.__class__.closed
    await session.flush()
    config = ingest.IngestConfig(
        secret_key=SECRET,
        policy=Policy(
            ticket_number_prefix="#",
            reply_to_closed=ClosedTicketReply.follow_up,
            auto_reply_limit_per_day=3,
        ),
        max_bytes=CONFIG.max_bytes,
    )
    reply = build_mail(message_id="<m9@example.dk>", headers={"In-Reply-To": "<m1@example.dk>"})
    outcome = await ingest_raw(session, reply, config)
    assert outcome.new_ticket
    [message] = await messages_of(session, outcome.ticket_id or 0)
    assert message.threaded_by is not None
    assert message.threaded_by.value == "follow_up"
    reopen = build_mail(message_id="<m10@example.dk>", headers={"In-Reply-To": "<m1@example.dk>"})
    reopened = await ingest_raw(session, reopen)
    assert reopened.ticket_id == first.ticket_id
    await session.refresh(ticket)
    assert ticket.status.value == "open"


async def test_messages_api_shows_how_a_mail_was_threaded(
    session: AsyncSession, client: httpx.AsyncClient, admin: Caller
) -> None:
    first = await ingest_raw(session, build_mail(body="Hej\n\n> gammel tekst\n> mere\n"))
    reply = build_mail(message_id="<m2@example.dk>", headers={"In-Reply-To": "<m1@example.dk>"})
    await ingest_raw(session, reply)
    listed = await client.get(f"/api/v1/tickets/{first.ticket_id}/messages", headers=admin.headers)
    items: list[dict[str, Any]] = listed.json()["items"]
    assert [m["threaded_by"] for m in items] == ["new_ticket", "in_reply_to"]
    assert items[1]["threading_detail"] == "In-Reply-To <m1@example.dk>"
    assert items[0]["kind"] == "normal"
    assert items[0]["sent_at"] == "2026-11-20T09:30:00Z"


async def test_an_overlong_subject_is_cut_not_refused(session: AsyncSession) -> None:
    outcome = await ingest_raw(session, build_mail(subject="Æ" * 3000))
    assert outcome.status is InboundStatus.processed
    ticket = await session.get(Ticket, outcome.ticket_id)
    assert ticket is not None
    assert ticket.subject == "Æ" * 998


async def test_imported_mail_is_never_answered_automatically(session: AsyncSession) -> None:
    inbound_id = await ingest.receive(session, build_mail(), source=ingest.IMPORT_SOURCE)
    outcome = await ingest.process(session, inbound_id, CONFIG)
    assert outcome.new_ticket
    inbound = await session.get(InboundMail, inbound_id)
    assert inbound is not None
    assert inbound.auto_reply_allowed is False
