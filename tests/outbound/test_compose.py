"""The MIME of an outgoing mail, without a server."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from app.outbound.compose import (
    MAX_REFERENCES,
    OutgoingFile,
    OutgoingMail,
    build,
    references_for,
    ticket_subject,
)

DATE = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)


def mail(**fields: object) -> OutgoingMail:
    values: dict[str, object] = {
        "message_id": "<ticketry.1.2.abc@firma.dk>",
        "from_address": "support@firma.dk",
        "from_name": "Firma Kundeservice – Ærø",
        "to": ["søren@example.dk"],
        "cc": [],
        "bcc": ["arkiv@firma.dk"],
        "subject": "Re: Fakturaen er forkert [#100123]",
        "body_text": "Hej Søren,\n\nfakturaen er rettet.\nMvh\nÅsa",
        "body_html": None,
    }
    values.update(fields)
    return OutgoingMail(**values)  # type: ignore[arg-type]


def parsed(outgoing: OutgoingMail) -> email.message.EmailMessage:
    raw = build(outgoing, date=DATE).as_bytes(policy=email.policy.SMTP)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_the_subject_carries_the_ticket_tag_once() -> None:
    assert (
        ticket_subject("SV: Re: Faktura [#100123]", prefix="#", number=100123, reply=True)
        == "Re: Faktura [#100123]"
    )
    assert ticket_subject("Pakke", prefix="T-", number=7, reply=False) == "Pakke [T-7]"


def test_references_keep_the_start_and_the_newest_of_a_long_thread() -> None:
    chain = [f"<{n}@example.dk>" for n in range(40)]
    kept = references_for("<parent@example.dk>", chain)
    assert len(kept) == MAX_REFERENCES
    assert kept[0] == "<0@example.dk>"
    assert kept[-1] == "<parent@example.dk>"
    assert references_for(None, []) == []


def test_text_and_html_parts_nordic_letters_and_no_bcc_header() -> None:
    message = parsed(mail())
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Firma Kundeservice – Ærø",
        "support@firma.dk",
    )
    assert message["To"] == "søren@example.dk"
    assert "Bcc" not in message
    assert message["Date"] == "Sun, 22 Nov 2026 21:30:00 +0000"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "fakturaen er rettet" in text.get_content()
    assert "<p>Hej Søren,</p>" in html.get_content()
    assert "rettet.<br>" in html.get_content()
    assert "Auto-Submitted" not in message


def test_automatic_mail_is_marked_so_auto_responders_stay_silent() -> None:
    message = parsed(mail(automatic=True, in_reply_to="<a@x>", references=["<a@x>"]))
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["In-Reply-To"] == "<a@x>"


def test_html_from_the_agent_is_kept_and_text_is_escaped_when_made_into_html() -> None:
    assert "<b>fed</b>" in str(parsed(mail(body_html="<p><b>fed</b></p>")).get_body(("html",)))
    made = parsed(mail(body_text="1 < 2 & <script>"))
    html = made.get_body(("html",))
    assert html is not None
    assert "1 &lt; 2 &amp; &lt;script&gt;" in html.get_content()


def test_attachments_keep_name_type_and_content_id() -> None:
    message = parsed(
        mail(
            attachments=[
                OutgoingFile("kvittering-å.pdf", "application/pdf", b"%PDF", None),
                OutgoingFile("logo.png", "image/png", b"\x89PNG", "<logo@firma.dk>"),
            ]
        )
    )
    files = list(message.iter_attachments())
    assert [f.get_filename() for f in files] == ["kvittering-å.pdf", "logo.png"]
    assert files[0].get_content() == b"%PDF"
    assert files[1]["Content-ID"] == "<logo@firma.dk>"
