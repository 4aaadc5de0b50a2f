"""The parser against CPython's own email test messages (shared/corpus, outside the repo).

Every file must come out as a ParsedMail or an UnparseableMail, never another error; a handful
are checked field by field.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.ingest.parser import ParsedMail, UnparseableMail, parse_mail
from tests.ingest.test_parser import assert_storable

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "cpython-email"
MAX_BYTES = 10 * 1024 * 1024
# msg_19 is a body without any header block (CPython tests it as MissingHeaderBodySeparator).
HEADERLESS = {"msg_19.txt"}

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"the shared mail corpus is not at {CORPUS} (it lives beside the repo, not in it)",
)


def _files() -> list[Path]:
    return sorted(CORPUS.glob("msg_*.txt")) if CORPUS.is_dir() else []


def parse(name: str) -> ParsedMail:
    return parse_mail((CORPUS / name).read_bytes(), max_bytes=MAX_BYTES)


@pytest.mark.parametrize("path", _files(), ids=lambda path: path.name)
def test_every_message_parses(path: Path) -> None:
    raw = path.read_bytes()
    if path.name in HEADERLESS:
        with pytest.raises(UnparseableMail, match="no header block"):
            parse_mail(raw, max_bytes=MAX_BYTES)
        return
    assert_storable(parse_mail(raw, max_bytes=MAX_BYTES))


def test_the_corpus_is_complete() -> None:
    assert len(_files()) == 49


def test_plain_message() -> None:
    mail = parse("msg_01.txt")
    assert mail.subject == "This is a test message"
    assert mail.from_address == "bbb@ddd.com"
    assert mail.from_name == "John X. Doe"  # old-style "addr (Name)"
    assert mail.to == ["bbb@zzz.org"]
    assert mail.delivered_to == ["bbb@zzz.org"]
    assert mail.message_id == "<15090.61304.110929.45684@aaa.zzz.org>"
    assert mail.date == datetime(2001, 5, 4, 18, 5, 44, tzinfo=UTC)
    assert mail.body_text == "\nHi,\n\nDo you like this message?\n\n-Me\n"
    assert mail.auto_headers == {"return-path": "<bbb@zzz.org>"}
    assert mail.attachments == []
    assert mail.defects == []


def test_attachment_with_a_name() -> None:
    mail = parse("msg_07.txt")
    assert mail.from_address == "barry@digicool.com"
    assert mail.from_name == "Barry"
    assert mail.body_text == "Hi there,\n\nThis is the dingus fish.\n"
    [gif] = mail.attachments
    assert (gif.filename, gif.content_type, gif.inline) == ("dingusfish.gif", "image/gif", False)
    assert gif.content.startswith(b"GIF87a")


def test_digest_of_nested_messages() -> None:
    """get_content() raises KeyError('multipart/digest') here; the parser walks into it."""
    mail = parse("msg_02.txt")
    assert mail.subject == "Ppp digest, Vol 1 #2 - 5 msgs"
    assert mail.body_text.startswith("Send Ppp mailing list submissions to")
    assert [attachment.content_type for attachment in mail.attachments] == ["message/rfc822"] * 5
    assert mail.attachments[0].filename == "[Ppp] testing #1.eml"
    assert mail.attachments[0].content.startswith(b"Message: 1\n")
    assert b"\nhello\n" in mail.attachments[0].content


def test_nested_multipart_keeps_text_and_image() -> None:
    mail = parse("msg_13.txt")
    assert mail.body_text.startswith("A text/plain part\n\nHi there,")
    assert [attachment.filename for attachment in mail.attachments] == ["dingusfish.gif"]


def test_missing_start_boundary_is_a_defect_not_a_failure() -> None:
    mail = parse("msg_17.txt")
    assert "StartBoundaryNotFoundDefect" in mail.defects
    assert "This is the dingus fish." in mail.body_text


def test_bounce_without_report_type_parameter() -> None:
    mail = parse("msg_16.txt")
    assert mail.report_type == "delivery-status"
    assert mail.bounced_message_ids == ["<002001c144a6$8752e060$56104586@oxy.edu>"]
    assert mail.auto_headers["return-path"] == "<>"
    assert mail.auto_headers["list-id"] == "SoCal-Raves <scr.socal-raves.org>"
    assert [attachment.content_type for attachment in mail.attachments] == [
        "message/delivery-status",
        "message/rfc822",
    ]
    assert b"Status: 5.0.0 (recipient reached disk quota)" in mail.attachments[0].content


def test_bounce_returning_headers_only() -> None:
    mail = parse("msg_43.txt")
    assert mail.report_type == "delivery-status"
    assert mail.bounced_message_ids == ["<edab.7804f5cb8070@python.org>"]
    assert mail.body_text.startswith("BANNED FILENAME ALERT")


def test_forwarded_message_becomes_an_eml_attachment() -> None:
    mail = parse("msg_46.txt")
    [forwarded] = mail.attachments
    assert forwarded.filename == "GroupwiseForwardingTest.eml"
    assert forwarded.content_type == "message/rfc822"


def test_crlf_line_ends() -> None:
    mail = parse("msg_26.txt")
    assert mail.subject == "IMAP file test"
    assert mail.from_name == "Father Time"
    assert "\r" not in mail.body_text
    assert mail.body_text.startswith("Simple email with attachment.")
    assert [attachment.filename for attachment in mail.attachments] == ["clock.bmp"]


def test_signed_message() -> None:
    mail = parse("msg_45.txt")
    assert mail.body_text == "This is the signed contents.\n"
    [signature] = mail.attachments
    assert signature.filename == "signature.asc"
    assert signature.content_type == "application/pgp-signature"


def test_multipart_without_boundary_keeps_its_text() -> None:
    mail = parse("msg_41.txt")
    assert "NoBoundaryInMultipartDefect" in mail.defects
    assert "Blah blah blah" in mail.body_text


def test_mbox_split_into_messages() -> None:
    box = mailbox.mbox(CORPUS / "mailbox_01.mbox", create=False)
    # The unquoted "From " line in the body starts a second, empty message: mbox's known flaw.
    first, second = (box.get_bytes(key) for key in box.iterkeys())
    mail = parse_mail(first, max_bytes=MAX_BYTES)
    assert mail.subject == "unquoted From in body; extra info on From line"
    assert mail.from_address is None  # "From: foo" has no domain
    assert mail.body_text == "Hello\n"
    with pytest.raises(UnparseableMail, match="empty"):
        parse_mail(second, max_bytes=MAX_BYTES)
