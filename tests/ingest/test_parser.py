"""parse_mail on hostile mail: the files in mails/ and small inline cases."""

from __future__ import annotations

import base64
import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingest.parser import ParsedMail, UnparseableMail, parse_mail
from app.ingest.quoting import split_reply

MAILS = Path(__file__).resolve().parent / "mails"
MAX_BYTES = 1024 * 1024


def _outcome(raw: bytes) -> ParsedMail | UnparseableMail:
    try:
        return parse_mail(raw, max_bytes=MAX_BYTES)
    except UnparseableMail as exc:
        return exc


def mail(name: str) -> ParsedMail:
    return parse_mail((MAILS / name).read_bytes(), max_bytes=MAX_BYTES)


def parse(raw: bytes | str) -> ParsedMail:
    return parse_mail(raw.encode() if isinstance(raw, str) else raw, max_bytes=MAX_BYTES)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name))


def assert_storable(parsed: ParsedMail) -> None:
    """Every text can go into PostgreSQL: valid UTF-8 (no lone surrogates), no NUL."""
    for text in _strings(parsed):
        text.encode("utf-8")
        assert "\x00" not in text
    for attachment in parsed.attachments:
        assert attachment.filename
        assert "/" not in attachment.filename
    assert parsed.date is None or parsed.date.utcoffset() is not None


# --- limits and garbage ---------------------------------------------------------------------


def test_oversize_mail_is_refused_with_the_sizes() -> None:
    raw = b"Subject: big\n\n" + b"x" * 100
    with pytest.raises(UnparseableMail) as caught:
        parse_mail(raw, max_bytes=50)
    assert caught.value.reason == (
        f"mail is {len(raw)} bytes; the limit is 50 (TICKETRY_MAX_MAIL_MB)"
    )


@pytest.mark.parametrize("raw", [b"", b"\r\n \t\n"])
def test_empty_mail_is_unparseable(raw: bytes) -> None:
    with pytest.raises(UnparseableMail, match="empty"):
        parse_mail(raw, max_bytes=MAX_BYTES)


def test_text_without_headers_is_unparseable() -> None:
    with pytest.raises(UnparseableMail, match="no header block"):
        parse(b"Hello, this is not a mail.\n\nJust text.\n")


def test_binary_garbage_is_unparseable_not_a_crash() -> None:
    garbage = random.Random(7).randbytes(4000)
    with pytest.raises(UnparseableMail):
        parse(b"\x00\xff" + garbage)


def test_deep_nesting_does_not_crash() -> None:
    depth = 3000
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth)
    )
    raw = "Subject: deep\n" + head + "Content-Type: text/plain\n\ninner\n"
    outcome = _outcome(raw.encode())
    if isinstance(outcome, UnparseableMail):
        assert outcome.reason.startswith("the mail parser failed")
    else:
        assert_storable(outcome)


def test_nul_bytes_do_not_reach_the_text() -> None:
    parsed = parse(b"Subject: a\x00b\nFrom: x@example.com\n\nbody\x00text\n")
    assert parsed.subject == "ab"
    assert parsed.body_text == "bodytext\n"


# --- headers: RFC 2047, 8-bit, charsets -----------------------------------------------------


def test_encoded_words_b_and_q_split_over_lines_and_charsets() -> None:
    parsed = mail("encoded_words.eml")
    # Includes a UTF-8 "ø" whose two bytes sit in two adjacent encoded-words.
    assert parsed.subject == "Ræd grød med fløde og bæræ € ø tak"
    assert parsed.from_name == "Jørgen Møller"
    assert parsed.from_address == "jorgen.moller@example.dk"
    assert parsed.to == ["soren@example.dk", "ase@example.se", "plain@example.com"]
    assert parsed.cc == ["support@example.com"]
    assert parsed.body_text == "Hej, jeg har et spørgsmål om min ordre.\n"


def test_encoded_word_with_broken_base64_is_kept_as_written() -> None:
    parsed = parse("Subject: =?utf-8?b?w6b?= ok =?utf-8?q?=C3=B8?=\n\nx")
    assert parsed.subject.endswith("ok ø")


def test_raw_8bit_headers_utf8_and_windows_1252() -> None:
    parsed = mail("raw_8bit_headers.eml")
    assert parsed.subject == "Spørgsmål om ændring"  # raw UTF-8
    assert parsed.from_name == "Ørsted Æblegrød"  # raw Latin-1 bytes
    assert parsed.from_address == "orsted@example.dk"
    assert parsed.body_text == "Kære support, min strøm er gået. Åh nej.\n"  # no charset given


def test_mislabelled_charsets() -> None:
    parsed = mail("mislabelled_charsets.eml")
    # "iso-8859-1" text with windows-1252 quotes and euro sign, in an encoded-word and a body.
    assert parsed.subject == "“Pris” € 100 för åtta"
    # A UTF-8 body labelled us-ascii comes out as UTF-8.
    assert parsed.body_text == "“Priset” är € 100 för åtta Öl.\nHälsningar från Örebro"


def test_unknown_and_aliased_charsets() -> None:
    parsed = mail("unknown_charsets.eml")
    assert parsed.subject == "你好Jørgen"  # iso-gb2312 and unicode-1-1-utf-7 encoded-words
    assert parsed.from_name == "Jørgen"  # x-unknown encoded-word holding UTF-8
    assert parsed.body_text.split("\n") == [
        "Blåbærgrød",  # x-unknown holding UTF-8
        "你好",  # iso-gb2312
        "Træt",  # a made-up label holding Latin-1
        "not \\u0041 escape",  # a Python codec that is no mail charset is not applied
    ]


def test_undecodable_bytes_become_replacement_characters() -> None:
    # Labelled UTF-8 but broken: the last resort replaces only the broken bytes.
    parsed = parse(b"Subject: x\nContent-Type: text/plain; charset=utf-8\n\nbl\xc3\xa5 \xff ok\n")
    assert parsed.body_text == "blå \ufffd ok\n"


def test_rfc2231_and_encoded_word_filenames() -> None:
    parsed = mail("rfc2231_filenames.eml")
    assert [attachment.filename for attachment in parsed.attachments] == [
        "æbler og øl på Årø.pdf",  # filename*=UTF-8''...
        "Kære kunde Østergade nr 5.pdf",  # continuations, iso-8859-1
        "Søknad fra Jørgen.pdf",  # Outlook's encoded-word in quotes
        ".._.._etc_påsswd",  # raw 8-bit, path separators removed
        "attachment-5.png",  # no name at all
    ]
    assert parsed.attachments[0].content == b"%PDF-1.4 fake"
    assert parsed.body_text == "Se vedhæftede filer."


def test_filenames_made_safe() -> None:
    long_name = "å" * 300 + ".pdf"
    parsed = parse(
        "Subject: x\nContent-Type: multipart/mixed; boundary=B\n\n"
        f'--B\nContent-Type: application/pdf; name="{long_name}"\n\nx\n'
        '--B\nContent-Type: application/pdf; name=".."\n\nx\n'
        '--B\nContent-Type: application/pdf; name="a\tb\\\\c.pdf"\n\nx\n'
        "--B--\n"
    )
    first, dots, controls = (attachment.filename for attachment in parsed.attachments)
    assert first == "å" * 251 + ".pdf"
    assert dots == "attachment-2.pdf"
    assert controls == "a_b_c.pdf"


def test_damaged_mime_headers_that_crash_the_stdlib() -> None:
    # The stdlib's header parser raises IndexError on a parameter without a value ...
    parsed = parse(
        "Subject: x\nContent-Type: multipart/mixed; boundary=B\n\n"
        "--B\nContent-Type: text/plain; charset*=a\x00b''x\n\nbody\n"
        "--B\nContent-Type: text/x-log\nContent-Disposition: attachment; filename*\n\nlog\n"
        "--B\nContent-Type: text/pla\x00in\n\nnul\n"
        "--B--\n"
    )
    # ... and ValueError on a NUL in an RFC 2231 charset: the body is still read.
    assert parsed.body_text == "body"
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("attachment-1.txt", "text/x-log"),
        ("attachment-2.bin", "application/octet-stream"),
    ]


def test_damaged_boundary_the_stdlib_cannot_read_is_quarantined() -> None:
    with pytest.raises(UnparseableMail, match="the mail parser failed: ValueError"):
        parse("Subject: x\nContent-Type: multipart/mixed; boundary*=a\x00b''x\n\nbody")


def test_message_ids_normalised() -> None:
    parsed = parse(
        "Message-ID:  < abc@example.com >\n"
        "In-Reply-To: <x@example.com> (Ann's message of Monday)\n"
        "References: <a@example.com>\n <b@example.com>\t<a@example.com> c@example.com\n"
        "\nbody"
    )
    assert parsed.message_id == "<abc@example.com>"
    assert parsed.in_reply_to == ["<x@example.com>"]
    assert parsed.references == ["<a@example.com>", "<b@example.com>"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: abc@example.com", "<abc@example.com>"),  # brackets forgotten
        ("Message-ID: <<abc@example.com>>", "<abc@example.com>"),
        ("Message-ID: garbage", None),
        ("Message-ID: <>", None),
        ("X-Other: 1", None),
    ],
)
def test_message_id_forms(header: str, expected: str | None) -> None:
    assert parse(f"{header}\n\nbody").message_id == expected


def test_addresses_without_domain_or_unparseable_are_left_out() -> None:
    parsed = parse(
        "From: MAILER-DAEMON\nTo: undisclosed-recipients:;\nCc: <>, ok@Example.com, @@@\n\nbody"
    )
    assert parsed.from_address is None
    assert parsed.from_name is None
    assert parsed.to == []
    assert parsed.cc == ["ok@example.com"]


def test_reply_to_and_delivered_to() -> None:
    parsed = mail("mailing_list.eml")
    assert parsed.delivered_to == ["support@example.com", "help@example.com"]
    parsed = parse("From: a@example.com\nReply-To: Team <Team@Example.com>, b@example.com\n\nx")
    assert parsed.reply_to == ["team@example.com", "b@example.com"]


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Mon, 15 Jan 2024 10:30:00 +0100", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("15 Jan 2024 10:30 -0500", datetime(2024, 1, 15, 15, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 23:30:00 -0800", datetime(2024, 1, 16, 7, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 10:30:00 GMT", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 10:30:00 EST", datetime(2024, 1, 15, 15, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 10:30:00 CET", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("Mon, 15 Jul 2024 10:30:00 CEST", datetime(2024, 7, 15, 8, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 10:30:00 +0000 (UTC)", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 10:30:00 -0000", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 24 10:30:00 +0200", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
        ("Mon,\n 15 Jan 2024\n 10:30:00 +0530", datetime(2024, 1, 15, 5, 0, tzinfo=UTC)),
        ("2024-01-15T10:30:00+01:00", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("Mon, 15 Jan 2024 10:30:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("yesterday", None),
        ("Mon, 32 Jan 2024 10:30:00 +0000", None),
        ("Mon, 15 Jan 2024 10:30:00 +9999", None),
        ("", None),
    ],
)
def test_dates_in_utc(header: str, expected: datetime | None) -> None:
    assert parse(f"Date: {header}\n\nbody").date == expected


def test_missing_date() -> None:
    assert parse("Subject: x\n\nbody").date is None


# --- MIME structure -------------------------------------------------------------------------


def test_html_only_mail_gets_text_from_the_html() -> None:
    parsed = mail("html_only.eml")
    assert parsed.body_text == "Hei, jeg får ikke logget inn.\n\nHilsen Åse\n"
    assert parsed.body_html == ("<p>Hei, jeg får ikke logget inn.</p><p>Hilsen <b>Åse</b></p>\n")
    assert parsed.from_name == "Åse Ødegård"


def test_text_and_html_with_inline_cid_image() -> None:
    parsed = mail("alternative_inline_image.eml")
    assert parsed.body_text == "Hej, her er fejlen: [billede]"
    assert parsed.body_html == (
        '<p>Hej, her er fejlen: <img src="cid:fejl.png@01DA" alt="fejl"></p>'
    )
    named, unnamed = parsed.attachments
    assert (named.filename, named.content_type, named.content) == (
        "fejl.png",
        "image/png",
        b"PNG-BYTES",
    )
    assert (named.content_id, named.inline) == ("<fejl.png@01DA>", True)
    assert (unnamed.filename, unnamed.content_id, unnamed.inline) == (
        "attachment-2.gif",
        "<no-name@01DA>",
        True,
    )


def test_text_only_mail_has_no_html() -> None:
    parsed = parse("Subject: x\n\nplain\n")
    assert parsed.body_html is None
    assert parsed.body_text == "plain\n"


def test_mail_without_any_text() -> None:
    parsed = parse("Subject: x\nContent-Type: application/pdf\n\n%PDF")
    assert parsed.body_text == ""
    assert parsed.new_text is None
    assert [attachment.filename for attachment in parsed.attachments] == ["attachment-1.pdf"]


def test_missing_boundary_keeps_the_body() -> None:
    parsed = mail("missing_boundary.eml")
    assert "StartBoundaryNotFoundDefect" in parsed.defects
    assert "The body is still here." in parsed.body_text


def test_forwarded_message_is_one_eml_attachment() -> None:
    parsed = mail("forwarded.eml")
    assert parsed.body_text == "Kan I tage jer af denne?"
    [forwarded] = parsed.attachments  # its own parts are not unpacked
    assert forwarded.filename == "Klage over værktøj.eml"
    assert forwarded.content_type == "message/rfc822"
    assert forwarded.inline is False
    inner = parse_mail(forwarded.content, max_bytes=MAX_BYTES)
    assert inner.message_id == "<inner@example.dk>"
    assert inner.body_text == "Det virker ikke."
    assert [attachment.filename for attachment in inner.attachments] == ["kvittering.pdf"]


def test_dsn_bounce_names_the_original() -> None:
    parsed = mail("dsn_bounce.eml")
    assert parsed.report_type == "delivery-status"
    assert parsed.bounced_message_ids == ["<ticket-100123.1@ticketry.example.com>"]
    assert parsed.auto_headers == {"auto-submitted": "auto-replied", "return-path": "<>"}
    assert parsed.from_address == "mailer-daemon@mx.example.com"
    status, original = parsed.attachments
    assert status.content_type == "message/delivery-status"
    assert b"Status: 5.1.1" in status.content
    assert original.filename == "[#100123] Your ticket.eml"


def test_dsn_with_headers_only() -> None:
    parsed = mail("dsn_headers_only.eml")
    assert parsed.report_type == "delivery-status"
    assert parsed.bounced_message_ids == ["<ticket-100124.7@ticketry.example.com>"]


def test_read_receipt_is_no_bounce() -> None:
    parsed = parse(
        "Subject: Read: x\n"
        "Content-Type: multipart/report; report-type=disposition-notification; boundary=R\n\n"
        "--R\nContent-Type: text/plain\n\nRead.\n"
        "--R\nContent-Type: message/disposition-notification\n\nDisposition: manual-action\n\n"
        "--R\nContent-Type: text/rfc822-headers\n\nMessage-ID: <sent@example.com>\n"
        "--R--\n"
    )
    assert parsed.report_type == "disposition-notification"
    assert parsed.bounced_message_ids == []


def test_out_of_office() -> None:
    parsed = mail("out_of_office.eml")
    assert parsed.subject == "Autosvar: Fraværende"
    assert parsed.auto_headers == {
        "auto-submitted": "auto-replied",
        "precedence": "auto_reply",
        "x-auto-response-suppress": "All",
    }
    assert parsed.in_reply_to == ["<ticket-100125.2@ticketry.example.com>"]
    assert parsed.references == [
        "<ticket-100125.1@ticketry.example.com>",
        "<ticket-100125.2@ticketry.example.com>",
    ]
    assert parsed.date == datetime(2024, 1, 18, 8, 15, tzinfo=UTC)
    assert parsed.body_text == "Jeg er på ferie til og med 22. januar.\n"


def test_mailing_list() -> None:
    parsed = mail("mailing_list.eml")
    assert parsed.auto_headers == {
        "precedence": "list",
        "list-id": "Announcements <announce.lists.example.org>",
        "list-unsubscribe": (
            "<mailto:announce-leave@lists.example.org>, <https://lists.example.org/unsubscribe>"
        ),
        "list-post": "NO",
        "return-path": "<announce-bounces@lists.example.org>",
    }
    assert parsed.date == datetime(2024, 1, 20, 7, 30, tzinfo=UTC)


def test_tnef_attachment_is_detected_and_kept() -> None:
    parsed = mail("tnef.eml")
    assert parsed.has_tnef is True
    [winmail] = parsed.attachments
    assert (winmail.filename, winmail.content_type) == ("winmail.dat", "application/ms-tnef")
    assert winmail.content == b"\x78\x9f\x3e\x22tnef"
    assert mail("forwarded.eml").has_tnef is False


def test_format_flowed_is_joined() -> None:
    parsed = parse(
        "Subject: x\nContent-Type: text/plain; charset=utf-8; format=flowed; delsp=no\n\n"
        "Tak for svaret, det er rart at h=\n"
        "Tak for svaret, det er \n"
        "rart at høre.\n"
        " From now on it works.\n"
        "\n"
        "Den 15. jan. 2024 kl. 10.30 skrev Support \n"
        "<support@example.com>:\n"
        "\n"
        "> Prøv at genstarte \n"
        "> routeren.\n"
        ">> older \n"
        ">> line\n"
    )
    assert parsed.body_text.split("\n") == [
        "Tak for svaret, det er rart at h=",
        "Tak for svaret, det er rart at høre.",
        "From now on it works.",
        "",
        "Den 15. jan. 2024 kl. 10.30 skrev Support <support@example.com>:",
        "",
        "> Prøv at genstarte routeren.",
        ">> older line",
        "",
    ]
    assert parsed.new_text == "\n".join(parsed.body_text.split("\n")[:3])


def test_format_flowed_delsp_removes_the_soft_break_space() -> None:
    parsed = parse(
        "Subject: x\nContent-Type: text/plain; format=flowed; delsp=yes\n\n"
        "Rechnungs \nnummer 12\n-- \nHans\n"
    )
    assert parsed.body_text == "Rechnungsnummer 12\n-- \nHans\n"
    assert parsed.new_text == "Rechnungsnummer 12"


def test_base64_latin1_body() -> None:
    body = "Hälsningar från Åsa Öberg".encode("iso-8859-1")
    parsed = parse(
        b"Subject: x\nContent-Type: text/plain; charset=ISO-8859-1\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(body)
    )
    assert parsed.body_text == "Hälsningar från Åsa Öberg"


# --- HTML sanitising ------------------------------------------------------------------------


def test_xss_payloads_come_out_inert() -> None:
    html = mail("xss.eml").body_html
    assert html is not None
    lowered = html.lower()
    for payload in (
        "<script",
        "alert(",
        "onerror",
        "onclick",
        "onload",
        "javascript:",
        "data:",
        "<iframe",
        "<svg",
        "<math",
        "<form",
        "<input",
        "<object",
        "<embed",
        "<meta",
        "<base",
        "url(",
    ):
        assert payload not in lowered, payload
    assert '<img src="cid:logo@example.net">' in html
    assert '<a href="https://example.org/help" rel="noopener noreferrer">help</a>' in html
    assert '<div style="color:red">styled</div>' in html
    assert "<p>Hi <b>there</b></p>" in html


# --- new text: quotes and signatures --------------------------------------------------------

REPLIES = {
    "en-gmail": (
        "Thanks, that fixed it!\n\n"
        "On Mon, Jan 15, 2024 at 10:30 AM Support <support@example.com> wrote:\n"
        "> Please try restarting the router.\n>\n> Best regards\n",
        "Thanks, that fixed it!",
    ),
    "en-gmail-wrapped-attribution": (
        "Works now.\n\nKind regards\nJohn\n\n"
        "On Mon, Jan 15, 2024 at 10:30 AM Ticketry Support Team of Example Company <\n"
        "support@example.com> wrote:\n\n"
        "> Please try restarting the router.\n",
        "Works now.\n\nKind regards\nJohn",
    ),
    "en-outlook": (
        "Hi,\n\nThe invoice is attached.\n\n"
        "-----Original Message-----\n"
        "From: Support <support@example.com>\n"
        "Sent: Monday, January 15, 2024 10:30 AM\n"
        "To: John <john@example.com>\nSubject: RE: Invoice\n\nPlease send the invoice.\n",
        "Hi,\n\nThe invoice is attached.",
    ),
    "en-outlook-rule": (
        "Thanks\n\n________________________________\n"
        "From: Support <support@example.com>\nSent: 15 January 2024 10:30\n"
        "To: John\nSubject: Invoice\n\nSee below.\n",
        "Thanks",
    ),
    "en-html-derived": (
        "Sounds good.\n\n*From:* Support <support@example.com>\n*Date:* Mon, 15 Jan 2024\n"
        "*Subject:* Plan\n\nHere is the plan.\n",
        "Sounds good.",
    ),
    "da-apple-with-signature": (
        "Hej\n\nTak for hjælpen, det virker nu.\n\nMvh\nJens\n\n-- \nJens Hansen\n"
        "Hansen ApS, tlf. 12 34 56 78\n\n"
        "Den 15. jan. 2024 kl. 10.30 skrev Support <support@example.com>:\n\n"
        "> Prøv at genstarte routeren.\n",
        "Hej\n\nTak for hjælpen, det virker nu.\n\nMvh\nJens",
    ),
    "da-outlook": (
        "Hej igen\n\nFra: Support <support@example.com>\nSendt: 15. januar 2024 10:30\n"
        "Til: Jens Hansen <jens@example.dk>\nEmne: SV: Faktura\n\nPrøv igen.\n",
        "Hej igen",
    ),
    "da-outlook-original": (
        "Se vedhæftede.\n\n-----Oprindelig meddelelse-----\nFra: Support\n"
        "Sendt: 15. januar 2024 10:30\n",
        "Se vedhæftede.",
    ),
    "sv-gmail": (
        "Hej!\n\nDet fungerar nu.\n\n"
        "Den mån 15 jan. 2024 kl 10:30 skrev Support <support@example.com>:\n"
        "> Prova att starta om routern.\n",
        "Hej!\n\nDet fungerar nu.",
    ),
    "sv-outlook": (
        "Tack!\n\nFrån: Support <support@example.com>\nSkickat: den 15 januari 2024 10:30\n"
        "Till: Sven\nÄmne: SV: Faktura\n",
        "Tack!",
    ),
    "no-gmail": (
        "Hei,\n\nNå virker det.\n\n"
        "man. 15. jan. 2024 kl. 10:30 skrev Support <support@example.com>:\n\n"
        "> Prøv å starte ruteren på nytt.\n",
        "Hei,\n\nNå virker det.",
    ),
    "no-outlook": (
        "Takk.\n\n-----Opprinnelig melding-----\nFra: Support <support@example.com>\n"
        "Sendt: 15. januar 2024 10:30\nTil: Ola\nEmne: Faktura\n",
        "Takk.",
    ),
    "fi-gmail": (
        "Hei,\n\nKiitos, nyt toimii.\n\n"
        "ma 15. tammik. 2024 klo 10.30 Tuki (support@example.com) kirjoitti:\n\n"
        "> Kokeile käynnistää reititin uudelleen.\n",
        "Hei,\n\nKiitos, nyt toimii.",
    ),
    "fi-apple": (
        "Kiitos!\n\nTuki <support@example.com> kirjoitti 15.1.2024 kello 10.30:\n\n"
        "> Kokeile käynnistää reititin uudelleen.\n",
        "Kiitos!",
    ),
    "fi-outlook": (
        "Selvä.\n\nLähettäjä: Tuki <support@example.com>\n"
        "Lähetetty: maanantai 15. tammikuuta 2024 10.30\nVastaanottaja: Matti\nAihe: VS: Lasku\n",
        "Selvä.",
    ),
    "de-thunderbird": (
        "Hallo,\n\ndanke, jetzt geht es.\n\nViele Grüße\nHans\n\n"
        "Am 15.01.2024 um 10:30 schrieb Support:\n> Bitte starten Sie den Router neu.\n",
        "Hallo,\n\ndanke, jetzt geht es.\n\nViele Grüße\nHans",
    ),
    "de-outlook": (
        "Danke.\n\nVon: Support <support@example.com>\nGesendet: Montag, 15. Januar 2024 10:30\n"
        "An: Hans\nBetreff: AW: Rechnung\n",
        "Danke.",
    ),
    "de-outlook-original": (
        "Anbei.\n\n-----Ursprüngliche Nachricht-----\nVon: Support\nGesendet: Montag\n",
        "Anbei.",
    ),
    "plain-quote-below": (
        "Yes, please cancel it.\n\n> Do you want us to cancel the order?\n> \n",
        "Yes, please cancel it.",
    ),
    "signature-only": (
        "Thanks for the quick answer.\n--\nJohn Smith\nACME Ltd.\n",
        "Thanks for the quick answer.",
    ),
}


@pytest.mark.parametrize(("text", "expected"), REPLIES.values(), ids=REPLIES.keys())
def test_new_text_without_quotes_and_signature(text: str, expected: str) -> None:
    assert split_reply(text) == expected


NOTHING_TO_SEPARATE = {
    "plain": "Hello, my order 1234 has not arrived.\nCan you check?\n\nThanks, Ann\n",
    "sentence-like-attribution": "Den 5. maj skrev jeg til jer:\nJeg har stadig ikke fået svar.\n",
    "from-in-prose": "From: my side everything works.\nTo be honest, the app is slow.\n",
    "interleaved": (
        "Hi,\n\n> Which model do you have?\nThe X200.\n\n> When did you buy it?\nIn March.\n"
    ),
    "interleaved-after-attribution": (
        "On Mon, Jan 15, 2024 at 10:30 AM Support <support@example.com> wrote:\n"
        "> Which model?\nThe X200.\n"
    ),
    "interleaved-with-signature": "Hi\n> Which model?\nThe X200.\n-- \nJohn\n",
    "quote-only": "> Do you want us to cancel the order?\n",
    "empty": "",
}


@pytest.mark.parametrize("text", NOTHING_TO_SEPARATE.values(), ids=NOTHING_TO_SEPARATE.keys())
def test_nothing_reliable_to_separate(text: str) -> None:
    assert split_reply(text) is None


def test_new_text_of_a_parsed_reply() -> None:
    text, expected = REPLIES["da-apple-with-signature"]
    parsed = parse(f"Subject: Re: x\nContent-Type: text/plain; charset=utf-8\n\n{text}")
    assert parsed.new_text == expected
    assert parsed.body_text == text.rstrip("\n") + "\n"


def test_new_text_of_an_html_only_reply() -> None:
    parsed = parse(
        "Subject: Re: x\nContent-Type: text/html; charset=utf-8\n\n"
        "<div>Works now, thanks.</div><div class=gmail_quote>"
        "<div>On Mon, Jan 15, 2024 at 10:30 AM Support &lt;support@example.com&gt; wrote:</div>"
        "<blockquote>Please restart.</blockquote></div>"
    )
    assert parsed.new_text == "Works now, thanks."


# --- never anything but UnparseableMail -----------------------------------------------------


def _samples() -> list[bytes]:
    return [path.read_bytes() for path in sorted(MAILS.glob("*.eml"))]


def _parses_or_refuses(raw: bytes) -> None:
    outcome = _outcome(raw)
    if isinstance(outcome, UnparseableMail):
        assert outcome.reason
    else:
        assert_storable(outcome)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    _parses_or_refuses(raw)


@FUZZ
@given(
    st.sampled_from(_samples()),
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1, exclude_max=True),
            st.sampled_from(["replace", "insert", "delete"]),
            st.binary(min_size=1, max_size=8)
            | st.sampled_from([b"=?", b"?=", b"\n", b"\r\n", b"--", b"<", b";", b'"', b"\xff"]),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_mutated_mails(sample: bytes, edits: list[tuple[float, str, bytes]]) -> None:
    raw = bytearray(sample)
    for where, kind, data in edits:
        at = int(where * len(raw))
        if kind == "replace":
            raw[at : at + len(data)] = data
        elif kind == "insert":
            raw[at:at] = data
        else:
            del raw[at : at + len(data)]
    _parses_or_refuses(bytes(raw))


_HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "References",
    "Content-Type",
    "Content-Disposition",
    "Content-Transfer-Encoding",
]
_HEADER_ALPHABET = [*"=?qQbB\"<>@,;:()\\ \t\n.*'%", "æ", "ø", "a"]


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_HEADER_NAMES),
            st.text(alphabet=st.sampled_from(_HEADER_ALPHABET), max_size=60),
        ),
        min_size=1,
        max_size=8,
    ),
    st.binary(max_size=200),
)
def test_hostile_header_values(headers: list[tuple[str, str]], body: bytes) -> None:
    head = "".join(f"{name}: {value}\n" for name, value in headers)
    _parses_or_refuses(head.encode("utf-8") + b"\n" + body)
