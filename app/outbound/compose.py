"""An outgoing mail as MIME: threading headers, the ticket number in the subject, a plain-text
part beside the HTML one, attachments. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from app.core.html import text_to_html
from app.ingest.pipeline import strip_reply_prefixes, ticket_number_pattern, ticket_reference

MAX_REFERENCES = 20
"""References kept on a reply: the thread's start and its newest mails are what clients use."""


@dataclass(frozen=True)
class OutgoingFile:
    filename: str
    content_type: str
    content: bytes = field(repr=False)
    content_id: str | None = None


@dataclass(frozen=True)
class OutgoingMail:
    message_id: str
    from_address: str
    from_name: str | None
    to: list[str]
    cc: list[str]
    bcc: list[str]
    """Only in the envelope, never in a header."""
    subject: str
    body_text: str
    body_html: str | None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    automatic: bool = False
    """An acknowledgement or other mail no person wrote: marked so that auto-responders stay
    silent (RFC 3834)."""
    auto_submitted: str = "auto-replied"
    """How an automatic mail came about: ``auto-generated`` when it answers no mail."""
    attachments: list[OutgoingFile] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        return list(dict.fromkeys([*self.to, *self.cc, *self.bcc]))


def ticket_subject(subject: str, *, prefix: str, number: int, reply: bool) -> str:
    """The subject with the ticket's tag once, at the end (``Re: Faktura [#100123]``): replies
    carrying it thread back even when a client drops the threading headers."""
    without_tag = ticket_number_pattern(prefix).sub(" ", subject)
    bare = " ".join(strip_reply_prefixes(without_tag).split())
    tagged = f"{bare} {ticket_reference(prefix, number)}".strip()
    return f"Re: {tagged}" if reply else tagged


def references_for(parent_message_id: str | None, parent_references: list[str]) -> list[str]:
    chain = [*parent_references, parent_message_id] if parent_message_id else parent_references
    chain = list(dict.fromkeys(chain))
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return chain


def _address(address: str, name: str | None = None) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


def _charset(maintype: str, content: bytes) -> dict[str, str] | None:
    """Text files are declared UTF-8 when they are, so Nordic letters survive the reader."""
    if maintype != "text":
        return None
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return {"charset": "utf-8"}


def build(mail: OutgoingMail, *, date: datetime) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = mail.message_id
    message["Date"] = format_datetime(date)
    message["From"] = _address(mail.from_address, mail.from_name)
    message["To"] = [_address(a) for a in mail.to]
    if mail.cc:
        message["Cc"] = [_address(a) for a in mail.cc]
    message["Subject"] = mail.subject
    if mail.in_reply_to:
        message["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        message["References"] = " ".join(mail.references)
    if mail.automatic:
        message["Auto-Submitted"] = mail.auto_submitted
        # Outlook and Exchange honour this instead: no out-of-office answer to an answer.
        message["X-Auto-Response-Suppress"] = "All"
    message.set_content(mail.body_text, cte="quoted-printable")
    message.add_alternative(
        mail.body_html if mail.body_html is not None else text_to_html(mail.body_text),
        subtype="html",
        cte="quoted-printable",
    )
    for file in mail.attachments:
        maintype, _, subtype = file.content_type.partition(";")[0].strip().partition("/")
        message.add_attachment(
            file.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=file.filename,
            cid=file.content_id,
            params=_charset(maintype, file.content),
        )
    return message
