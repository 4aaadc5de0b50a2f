"""The ingestion filters, one decision at a time (pure: no database, no server)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.core.config import ClosedTicketReply
from app.ingest.parser import ParsedMail
from app.ingest.pipeline import Facts, Policy, decide, normalised_subject, ticket_number_pattern
from app.tickets.models import MailKind, ThreadMatch, TicketStatus
from app.tickets.schemas import ThreadCandidate

POLICY = Policy(
    ticket_number_prefix="#", reply_to_closed=ClosedTicketReply.reopen, auto_reply_limit_per_day=3
)
TICKET = ThreadCandidate(
    id=7,
    number=100123,
    status=TicketStatus.open,
    subject="Faktura 1042 er forkert",
    customer_id=3,
    merged_into_id=None,
)


def mail(**fields: Any) -> ParsedMail:
    base: dict[str, Any] = {
        "message_id": "<new@example.dk>",
        "in_reply_to": [],
        "references": [],
        "subject": "Faktura 1042 er forkert",
        "from_address": "karen@example.dk",
        "from_name": "Karen",
        "reply_to": [],
        "to": ["support@ticketry.test"],
        "cc": [],
        "delivered_to": [],
        "date": None,
        "body_text": "Hej",
        "body_html": None,
        "new_text": None,
        "attachments": [],
        "auto_headers": {},
        "report_type": None,
        "bounced_message_ids": [],
        "has_tnef": False,
        "defects": [],
    }
    base.update(fields)
    return ParsedMail(**base)


@pytest.mark.parametrize(
    ("headers", "fields", "kind"),
    [
        ({}, {}, MailKind.normal),
        ({"auto-submitted": "auto-replied"}, {}, MailKind.auto_reply),
        ({"auto-submitted": "no"}, {}, MailKind.normal),
        ({"x-autoreply": "yes"}, {}, MailKind.auto_reply),
        ({"precedence": "bulk"}, {}, MailKind.mailing_list),
        ({"precedence": "junk"}, {}, MailKind.auto_reply),
        ({"x-loop": "helpdesk@example.dk"}, {}, MailKind.auto_reply),
        ({"return-path": "<>"}, {}, MailKind.auto_reply),
        ({}, {"subject": "Automatisk svar: Faktura"}, MailKind.auto_reply),
        ({}, {"subject": "Fravær: Faktura"}, MailKind.auto_reply),
        ({"list-id": "<kunder.example.dk>"}, {}, MailKind.mailing_list),
        ({"precedence": "list"}, {}, MailKind.mailing_list),
        ({}, {"report_type": "delivery-status"}, MailKind.bounce),
        ({}, {"from_address": "mailer-daemon@mx.example.dk"}, MailKind.bounce),
        ({"x-ticketry-loop": "1"}, {}, MailKind.own),
    ],
)
def test_kinds(headers: dict[str, str], fields: dict[str, Any], kind: MailKind) -> None:
    ctx = decide(mail(auto_headers=headers, **fields), Facts(), POLICY)
    assert ctx.kind is kind
    assert ctx.auto_reply_allowed is (kind is MailKind.normal)


def test_own_message_id_is_own_mail() -> None:
    assert decide(mail(), Facts(is_own_message_id=True), POLICY).kind is MailKind.own


def test_token_wins_over_everything() -> None:
    facts = Facts(tokens={"<ticketry.7.9.abc@x>": TICKET})
    ctx = decide(
        mail(subject="Something else entirely", references=["<ticketry.7.9.abc@x>"]), facts, POLICY
    )
    assert ctx.target == TICKET
    assert ctx.threaded_by is ThreadMatch.token


def test_in_reply_to_threads_even_with_a_new_subject() -> None:
    facts = Facts(by_message_id={"<a@x>": TICKET})
    ctx = decide(mail(in_reply_to=["<a@x>"], subject="Nyt emne"), facts, POLICY)
    assert (ctx.target, ctx.threaded_by) == (TICKET, ThreadMatch.in_reply_to)
    assert "<a@x>" in ctx.threading_detail


def test_references_alone_threads_only_while_the_subject_fits() -> None:
    facts = Facts(by_message_id={"<a@x>": TICKET})
    same = decide(
        mail(references=["<a@x>"], subject="SV: Re: Faktura 1042 er forkert"), facts, POLICY
    )
    assert (same.target, same.threaded_by) == (TICKET, ThreadMatch.references)
    changed = decide(mail(references=["<a@x>"], subject="Helt andet spørgsmål"), facts, POLICY)
    assert changed.target is None
    assert changed.suggested == TICKET
    assert changed.threaded_by is ThreadMatch.new_ticket


def test_subject_number_from_the_customer_threads_from_a_stranger_suggests() -> None:
    subject = "Re: [#100123] Faktura 1042 er forkert"
    known = decide(
        mail(subject=subject),
        Facts(subject_ticket=TICKET, sender_known_to_subject_ticket=True),
        POLICY,
    )
    assert (known.target, known.threaded_by) == (TICKET, ThreadMatch.subject_number)
    stranger = decide(mail(subject=subject), Facts(subject_ticket=TICKET), POLICY)
    assert stranger.target is None
    assert stranger.suggested == TICKET


def test_reply_to_closed_ticket_reopens_or_follows_up() -> None:
    closed = replace(TICKET, status=TicketStatus.closed)
    facts = Facts(by_message_id={"<a@x>": closed})
    reopen = decide(mail(in_reply_to=["<a@x>"]), facts, POLICY)
    assert reopen.target == closed
    follow = decide(
        mail(in_reply_to=["<a@x>"]),
        facts,
        replace(POLICY, reply_to_closed=ClosedTicketReply.follow_up),
    )
    assert follow.target is None
    assert follow.follow_up_of == closed
    assert follow.threaded_by is ThreadMatch.follow_up


def test_bounce_joins_the_ticket_of_the_bounced_reply() -> None:
    ctx = decide(
        mail(report_type="delivery-status", from_address="mailer-daemon@mx.example.dk"),
        Facts(bounced_ticket=TICKET),
        POLICY,
    )
    assert ctx.kind is MailKind.bounce
    assert ctx.target == TICKET
    assert ctx.auto_reply_allowed is False


@pytest.mark.parametrize(
    ("fields", "facts", "allowed"),
    [
        ({}, Facts(), True),
        ({"from_address": "noreply@shop.example"}, Facts(), False),
        (
            {"from_address": "support@ticketry.test"},
            Facts(own_addresses=frozenset({"support@ticketry.test"})),
            False,
        ),
        ({"auto_headers": {"x-auto-response-suppress": "All"}}, Facts(), False),
        ({}, Facts(automatic_answers_today=3), False),
        ({}, Facts(automatic_answers_today=2), True),
    ],
)
def test_automatic_answers_only_to_people_and_not_too_often(
    fields: dict[str, Any], facts: Facts, allowed: bool
) -> None:
    ctx = decide(mail(**fields), facts, POLICY)
    assert ctx.auto_reply_allowed is allowed
    assert ctx.auto_reply_reason


def test_subject_normalising() -> None:
    pattern = ticket_number_pattern("#")
    assert normalised_subject("SV: VS: Re:  [#100123] Faktura  ÆØÅ", pattern) == "faktura æøå"
    assert pattern.findall("Re: [#100123] x [#7]") == ["100123", "7"]
    assert ticket_number_pattern("TKT-").findall("[TKT-55] hi") == ["55"]


def test_in_reply_to_comes_before_an_older_token_in_references() -> None:
    """A reply into a follow-up ticket still carries the first ticket's token in References."""
    follow_up = replace(TICKET, id=8, number=100124)
    facts = Facts(tokens={"<ticketry.7.1.aaa@x>": TICKET}, by_message_id={"<their@x>": follow_up})
    ctx = decide(
        mail(in_reply_to=["<their@x>"], references=["<ticketry.7.1.aaa@x>", "<their@x>"]),
        facts,
        POLICY,
    )
    assert ctx.target == follow_up
    assert ctx.threaded_by is ThreadMatch.in_reply_to


def test_a_contact_form_mail_belongs_to_the_reply_to_person() -> None:
    form = mail(from_address="noreply@webshop.example", reply_to=["kunde@example.se"])
    ctx = decide(form, Facts(), POLICY)
    assert ctx.customer_address == "kunde@example.se"
    assert ctx.auto_reply_allowed is True
    assert decide(mail(), Facts(), POLICY).customer_address == "karen@example.dk"


def test_imported_history_is_never_answered_automatically() -> None:
    ctx = decide(mail(), Facts(imported=True), POLICY)
    assert ctx.auto_reply_allowed is False
    assert ctx.auto_reply_reason == "imported history"
