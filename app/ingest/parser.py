"""Raw RFC 5322 bytes -> a typed, decoded, sanitised `ParsedMail`.

Pure and synchronous (the caller runs it in a worker thread): no I/O, no database. The standard
library does the MIME work; what is added here is what real mail needs beyond it:

- charsets: every byte sequence decodes. Labels go through an alias table, Western labels try
  UTF-8 first and read ISO-8859-1 as its superset windows-1252, unknown labels are guessed
  (UTF-8, else windows-1252), and errors="replace" is the last resort;
- raw 8-bit header bytes, which the stdlib keeps as surrogate escapes, are decoded the same way;
- RFC 2047 encoded-words are decoded with that charset handling, and re-encoded as UTF-8 before
  the stdlib's structured parsers (addresses, MIME parameters) see them, since those would turn
  an unknown charset into replacement characters;
- `get_content()` is never called: it raises LookupError on unknown charsets and KeyError on
  nested multiparts; parts are walked by hand and decoded with `get_payload(decode=True)`.

Nothing but `UnparseableMail` leaves `parse_mail`: an unexpected stdlib error quarantines the
mail (raw kept, reason given) instead of failing the ingestion loop.
"""

from __future__ import annotations

import base64
import codecs
import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from app.core.html import html_to_text, sanitise_html
from app.ingest.quoting import split_reply


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    """Decoded (RFC 2047/2231); "attachment-N.ext" when the mail names none."""
    content_type: str
    content: bytes
    content_id: str | None
    """"<...>" for inline parts referenced by cid:."""
    inline: bool


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    reply_to: list[str]
    to: list[str]
    cc: list[str]
    delivered_to: list[str]
    date: datetime | None
    body_text: str
    body_html: str | None
    new_text: str | None
    attachments: list[ParsedAttachment]
    auto_headers: dict[str, str]
    report_type: str | None
    bounced_message_ids: list[str]
    has_tnef: bool
    defects: list[str]


class UnparseableMail(Exception):
    """The mail cannot be turned into a ticket message; `reason` is shown in the quarantine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


AUTO_HEADERS = (
    "auto-submitted",
    "precedence",
    "x-auto-response-suppress",
    "x-autoreply",
    "x-autorespond",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "return-path",
    "x-loop",
    "x-ticketry-loop",
)

_REGISTRY = HeaderRegistry()


def _header_object(name: str, value: str) -> Any:
    """The stdlib's parsed header object, or None where its parser crashes.

    It does on hostile values (IndexError in parameter lists, ValueError for a NUL in an
    RFC 2231 charset, ...), also while the feed parser reads Content-Type, so it is caught here,
    once, for every header read.
    """
    try:
        return _REGISTRY(name, value)
    except Exception:
        return None


def _tolerant_header(name: str, value: str) -> Any:
    # A plain str is enough for the accessors the parser uses (get_content_type, get_param,
    # get_content_disposition ...): they split the raw text themselves.
    header = _header_object(name, value)
    return value if header is None else header


_POLICY = email.policy.default.clone(header_factory=_tolerant_header)
# For nested messages written out as attachments: headers as they came, not refolded.
_VERBATIM = _POLICY.clone(refold_source="none")


def parse_mail(raw: bytes, *, max_bytes: int) -> ParsedMail:
    if len(raw) > max_bytes:
        raise UnparseableMail(
            f"mail is {len(raw)} bytes; the limit is {max_bytes} (TICKETRY_MAX_MAIL_MB)"
        )
    if not raw.strip():
        raise UnparseableMail("mail is empty")
    try:
        return _parse(raw)
    except UnparseableMail:
        raise
    except Exception as exc:
        # The stdlib's header and MIME parsers have had crashes on hostile input (and deep
        # nesting ends in RecursionError); such a mail is quarantined with the reason.
        raise UnparseableMail(f"the mail parser failed: {type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=_POLICY)
    if not msg.keys():
        raise UnparseableMail("no header block found: the mail does not start with headers")
    defects: list[str] = []
    from_addresses = _addresses(msg, "from", defects)
    body = _Body.of(msg)
    report_type = _report_type(msg)
    for name in body.defects:
        _append_unique(defects, name)
    return ParsedMail(
        message_id=_first_id(msg, "message-id"),
        in_reply_to=_ids(" ".join(_raw_all(msg, "in-reply-to"))),
        references=_ids(" ".join(_raw_all(msg, "references"))),
        subject=_text(_raw(msg, "subject") or ""),
        from_address=from_addresses[0][0] if from_addresses else None,
        from_name=from_addresses[0][1] if from_addresses else None,
        reply_to=[address for address, _ in _addresses(msg, "reply-to", defects)],
        to=[address for address, _ in _addresses(msg, "to", defects)],
        cc=[address for address, _ in _addresses(msg, "cc", defects)],
        delivered_to=[
            address
            for name in ("delivered-to", "x-original-to")
            for address, _ in _addresses(msg, name, defects)
        ],
        date=_date(_raw(msg, "date")),
        body_text=body.text,
        body_html=body.html,
        new_text=split_reply(body.text) if body.text else None,
        attachments=body.attachments,
        auto_headers={
            name: _plain(value) for name in AUTO_HEADERS if (value := _raw(msg, name)) is not None
        },
        report_type=report_type,
        bounced_message_ids=_bounced_ids(msg) if report_type == "delivery-status" else [],
        has_tnef=any(_is_tnef(attachment) for attachment in body.attachments),
        defects=defects,
    )


# --- charsets -------------------------------------------------------------------------------

# Labels seen in real mail that Python does not know.
_UNKNOWN_TO_PYTHON = {
    "iso-gb2312": "gb2312",
    "x-gbk": "gbk",
    "x-euc-cn": "gb2312",
    "x-sjis": "shift_jis",
    "windows-31j": "cp932",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "x-windows-949": "cp949",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "x-mac-roman": "mac-roman",
    "x-mac-ce": "mac-latin2",
}
# Charsets that senders use as labels for a wider one (the WHATWG Encoding Standard makes the
# same choices for the web): decoding with the wider one loses nothing and reads what the narrow
# one cannot. Keyed by Python's codec name.
_WIDER = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
}
# Labels that say "we do not know": the bytes are guessed.
_UNKNOWN_CHARSETS = frozenset(
    {"", "x-unknown", "unknown", "unknown-8bit", "x-user-defined", "default", "8bit", "none"}
)
# Python text codecs that are not mail charsets: they would interpret backslash escapes or
# punycode instead of decoding text, or always fail.
_NOT_MAIL_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)
_WESTERN = "cp1252"


def _codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when unknown."""
    if label is None:
        return None
    # RFC 2231 allows a language after "*" ("utf-8*en"); quotes are a common sloppiness.
    name = label.split("*", 1)[0].strip().strip("\"'").lower()
    if name in _UNKNOWN_CHARSETS:
        return None
    name = _UNKNOWN_TO_PYTHON.get(name, name)
    for candidate in (name, name.removeprefix("x-")):
        try:
            codec = codecs.lookup(candidate).name
            # Refuses bytes-to-bytes codecs (base64, zlib ...) with LookupError.
            b"".decode(codec)
        except (LookupError, ValueError):  # ValueError: a NUL in the label
            continue
        if codec not in _NOT_MAIL_CHARSETS:
            return _WIDER.get(codec, codec)
    return None


def _decode(data: bytes, label: str | None) -> str:
    """Bytes in a declared (possibly wrong or unknown) charset -> text, never failing."""
    codec = _codec(label)
    # UTF-8 labelled as ASCII or Latin-1 is common; Latin-1 text that happens to be valid UTF-8
    # practically never occurs, so UTF-8 is tried first for those. A wrong label of any other
    # kind is most often UTF-8 too.
    attempts = ("utf-8", _WESTERN) if codec is None or codec == _WESTERN else (codec, "utf-8")
    for attempt in attempts:
        try:
            return data.decode(attempt)
        except UnicodeError:
            continue
    return data.decode(codec or _WESTERN, errors="replace")


# --- headers --------------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ENCODED_WORD = r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?="
_ENCODED_RUN = re.compile(rf"{_ENCODED_WORD}(?:[ \t]+{_ENCODED_WORD})*")


def _clean(text: str) -> str:
    """No NUL (PostgreSQL text refuses it) and no lone surrogate (not encodable as UTF-8)."""
    return _SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def _raw_all(part: Message, name: str) -> list[str]:
    # raw_items() gives the source text: the policy's header objects would already have
    # replaced undecodable bytes and unknown charsets.
    return [str(value) for key, value in part.raw_items() if key.lower() == name]


def _raw(part: Message, name: str) -> str | None:
    return next(iter(_raw_all(part, name)), None)


def _plain(value: str) -> str:
    """A raw header value unfolded, with 8-bit bytes decoded; encoded-words left alone."""
    value = _LINE_BREAK.sub("", value)
    if _SURROGATE.search(value):
        # The parser keeps undecodable header bytes as surrogate escapes: recover the bytes.
        value = _decode(value.encode("utf-8", "surrogateescape"), None)
    return _clean(value).strip()


def _decode_run(run: str) -> str:
    """Adjacent encoded-words -> text. decode_header joins same-charset words into one byte
    string first, so a character split across two words comes out whole."""
    try:
        chunks = decode_header(run)
    except HeaderParseError:
        # One word's base64 is broken: decode the others, keep that one as written.
        words = re.findall(_ENCODED_WORD, run)
        return run if len(words) == 1 else "".join(_decode_run(word) for word in words)
    return "".join(
        _decode(chunk, charset) if isinstance(chunk, bytes) else chunk for chunk, charset in chunks
    )


def _text(value: str) -> str:
    """An unstructured header (Subject) fully decoded, on one line."""
    decoded = _ENCODED_RUN.sub(lambda m: _decode_run(m.group()), _plain(value))
    # An encoded-word can carry a line break; a header value is one line.
    return _clean(_LINE_BREAK.sub(" ", decoded)).strip()


def _utf8_words(value: str) -> str:
    """Encoded-words re-encoded as UTF-8, ready for the stdlib's structured header parsers."""

    def reencode(match: re.Match[str]) -> str:
        text = _clean(_decode_run(match.group()))
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode("ascii") + "?="

    return _ENCODED_RUN.sub(reencode, _plain(value))


def _structured(name: str, value: str) -> Any:
    """The stdlib's parsed header object (addresses, MIME parameters), None if it crashed."""
    return _header_object(name, _utf8_words(value))


# RFC 5321 caps a path at 256 octets; the database column takes 320.
_MAX_ADDRESS = 320


def _addresses(msg: Message, name: str, defects: list[str]) -> list[tuple[str, str | None]]:
    """(lower-cased addr-spec, display name) for every usable address in every `name` header."""
    found: list[tuple[str, str | None]] = []
    for value in _raw_all(msg, name):
        # "to" for all: Delivered-To and X-Original-To are not address headers to the stdlib.
        header = _structured("to", value)
        if header is None:
            _append_unique(defects, "UnparseableAddressHeader")
            continue
        for address in header.addresses:
            spec = _clean(str(address.addr_spec)).lower()
            if not address.username or not address.domain or len(spec) > _MAX_ADDRESS:
                continue
            display = _clean(str(address.display_name)).strip() or _comment_name(value, spec)
            found.append((spec, display or None))
    return found


def _comment_name(value: str, spec: str) -> str:
    """The name in old-style "addr (Name)": the stdlib's address parser drops comments, the
    legacy one reads them as the display name."""
    if "(" not in value:
        return ""
    pairs = getaddresses([_plain(value)])
    return next((_text(name) for name, address in pairs if address.lower() == spec), "")


_BRACKETED_ID = re.compile(r"<([^<>]*)>")
_MAX_ID = 998


def _ids(value: str) -> list[str]:
    """Message-IDs as "<left@right>", in order, without duplicates and without garbage.

    Bracketed ids are taken as they are (some systems leave out the "@"); an unbracketed token
    counts only when it looks like an id ("left@right").
    """
    value = _plain(value)
    tokens = [re.sub(r"\s+", "", token) for token in _BRACKETED_ID.findall(value)]
    if not tokens:
        tokens = [token for token in re.split(r"[\s,;]+", value) if "@" in token]
    ids: list[str] = []
    for token in tokens:
        normalised = f"<{token}>"
        if token and len(normalised) <= _MAX_ID:
            _append_unique(ids, normalised)
    return ids


def _first_id(part: Message, header: str) -> str | None:
    return next(iter(_ids(_raw(part, header) or "")), None)


# Zone names outside RFC 5322 that Scandinavian and German mail uses; the stdlib reads any
# unknown name as "no zone" and would return a naive time.
_ZONE_NAMES = {
    "CET": 1,
    "MET": 1,
    "CEST": 2,
    "MEST": 2,
    "EET": 2,
    "EEST": 3,
    "WET": 0,
    "WEST": 1,
    "BST": 1,
}


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = _plain(value)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            # Scripts sometimes write ISO 8601 instead of RFC 5322.
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        zone = re.search(r"\b([A-Z]{3,4})\s*(?:\([^)]*\))?\s*$", text)
        hours = _ZONE_NAMES.get(zone.group(1), 0) if zone else 0
        parsed = parsed.replace(tzinfo=timezone(timedelta(hours=hours)))
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _append_unique(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


# --- MIME structure -------------------------------------------------------------------------


def _param(part: Message, header: str, name: str) -> str | None:
    """A decoded MIME parameter (RFC 2231 and encoded-words handled by the stdlib)."""
    value = _raw(part, header)
    if value is None:
        return None
    parsed = _structured(header, value)
    found = parsed.params.get(name) if parsed is not None else None
    return None if found is None else _clean(str(found)).strip() or None


# Some MTAs leave out the report-type parameter (cpython msg_16); the status part says it too.
_REPORT_PARTS = {
    "message/delivery-status": "delivery-status",
    "message/disposition-notification": "disposition-notification",
}


def _report_type(msg: Message) -> str | None:
    if msg.get_content_type() != "multipart/report":
        return None
    found = _param(msg, "content-type", "report-type")
    if found:
        return found.lower()
    kinds = (_REPORT_PARTS.get(part.get_content_type()) for part in _subparts(msg))
    return next((kind for kind in kinds if kind), None)


# Extensions for parts that come without a name. A fixed table rather than `mimetypes`, which
# reads the machine's /etc/mime.types and so names the same part differently per machine.
_EXTENSIONS = {
    "application/ms-tnef": ".dat",
    "application/octet-stream": ".bin",
    "application/pdf": ".pdf",
    "application/pgp-encrypted": ".pgp",
    "application/pgp-signature": ".asc",
    "application/pkcs7-mime": ".p7m",
    "application/pkcs7-signature": ".p7s",
    "application/vnd.ms-tnef": ".dat",
    "application/zip": ".zip",
    "image/bmp": ".bmp",
    "image/gif": ".gif",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/svg+xml": ".svg",
    "image/tiff": ".tif",
    "image/webp": ".webp",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/global": ".eml",
    "message/rfc822": ".eml",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "text/html": ".html",
    "text/plain": ".txt",
    "text/rfc822-headers": ".txt",
}
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_UNSAFE_IN_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_MAX_FILENAME = 255


def _safe_filename(name: str) -> str:
    """No path separators or control characters, and at most 255 characters (what most file
    systems take, so a download keeps its name), the extension kept."""
    name = _UNSAFE_IN_FILENAME.sub("_", name).strip()
    if len(name) > _MAX_FILENAME:
        _, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) < 16 else ""
        name = name[: _MAX_FILENAME - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name


def _is_tnef(attachment: ParsedAttachment) -> bool:
    return attachment.content_type in _TNEF_TYPES or attachment.filename.lower() == "winmail.dat"


def _subparts(part: Message) -> list[Message]:
    """The parsed children of a multipart or message/* part; [] for a leaf."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _serialise(msg: Message, defects: list[str]) -> bytes:
    """A nested message as bytes, as close to how it came as the stdlib can write it."""
    try:
        return msg.as_bytes(policy=_VERBATIM)
    except Exception:
        # The byte generator fails on some damaged parts (non-ASCII left in a multipart's
        # unparsed text); the text generator does not encode, so it gets further.
        try:
            return msg.as_string(policy=_VERBATIM).encode("utf-8", "surrogateescape")
        except Exception:
            # The raw mail is stored, so the forwarded message is not lost, only not copied.
            _append_unique(defects, "UnserialisableMessage")
            return b""


def _bounced_ids(msg: Message) -> list[str]:
    """Message-IDs of the returned original in a DSN (RFC 3464): its message/rfc822 part, or
    the text/rfc822-headers part that servers send when they return headers only."""
    ids: list[str] = []
    for part in _subparts(msg):
        content_type = part.get_content_type()
        headers: Message | None = None
        if content_type in ("message/rfc822", "message/global"):
            headers = next(iter(_subparts(part)), None)
        elif content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                headers = email.message_from_bytes(data, policy=_POLICY)
        if headers is not None:
            for found in _ids(_raw(headers, "message-id") or ""):
                _append_unique(ids, found)
    return ids


_FLOWED_QUOTE = re.compile(r"^(>*) ?")


def _unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676): a line ending in a space
    continues on the next line of the same quote depth. Apple Mail and Thunderbird send it, and
    unjoined it breaks sentences (and quote attributions) in the middle."""
    lines: list[tuple[str, str]] = []  # (quote depth as ">>", content)
    joining = False
    for line in text.split("\n"):
        depth, content = _split_flowed(line)
        if joining and lines[-1][0] == depth:
            lines[-1] = (depth, lines[-1][1] + content)
        else:
            lines.append((depth, content))
        joining = content.endswith(" ") and content != "-- "
        if joining and delsp:
            lines[-1] = (depth, lines[-1][1][:-1])
    return "\n".join(f"{depth} {content}" if depth else content for depth, content in lines)


def _split_flowed(line: str) -> tuple[str, str]:
    match = _FLOWED_QUOTE.match(line)
    depth = match.group(1) if match else ""
    content = line[len(depth) :]
    # Space-stuffing (RFC 3676 4.4): one leading space was added by the sender.
    return depth, content[1:] if content.startswith(" ") else content


@dataclass
class _Body:
    """The result of one walk over the MIME tree."""

    text: str
    html: str | None
    attachments: list[ParsedAttachment]
    defects: list[str]

    @classmethod
    def of(cls, msg: Message) -> _Body:
        texts: list[str] = []
        htmls: list[str] = []
        attachments: list[ParsedAttachment] = []
        defects: list[str] = []
        # Iterative and in document order: a hostile mail can nest parts deeply.
        stack: list[Message] = [msg]
        while stack:
            part = stack.pop()
            content_type = _content_type(part)
            if content_type.startswith("message/"):
                attachments.append(
                    _message_attachment(part, content_type, len(attachments) + 1, defects)
                )
            elif part.is_multipart():
                stack.extend(reversed(_subparts(part)))
            elif _is_body(part, content_type):
                text = _part_text(part)
                if content_type == "text/html":
                    htmls.append(text)
                else:
                    texts.append(text)
            else:
                attachments.append(_leaf_attachment(part, content_type, len(attachments) + 1))
            # Collected after decoding: get_payload(decode=True) adds base64 defects.
            for defect in part.defects:
                _append_unique(defects, type(defect).__name__)
        raw_html = "\n".join(htmls) if htmls else None
        if any(text.strip() for text in texts):
            text = "\n".join(texts)
        elif raw_html is not None:
            text = _clean(html_to_text(raw_html))
        else:
            text = ""
        html = _clean(sanitise_html(raw_html)) if raw_html is not None else None
        return cls(text=text, html=html, attachments=attachments, defects=defects)


_MIME_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
# RFC 6838 allows 127 characters a side; the attachments table stores 200.
_MAX_MIME_TYPE = 200


def _content_type(part: Message) -> str:
    """The part's type as the stdlib reads it (text/plain when missing or without a "/"), but
    never with characters a MIME type cannot have: those make it application/octet-stream."""
    content_type = part.get_content_type()
    if len(content_type) <= _MAX_MIME_TYPE and _MIME_TYPE.match(content_type):
        return content_type
    return "application/octet-stream"


def _is_body(part: Message, content_type: str) -> bool:
    if part.get_content_disposition() == "attachment" or _filename(part) is not None:
        return False
    # A multipart whose boundary is missing arrives as one text blob; showing it beats losing it.
    return content_type in ("text/plain", "text/html") or content_type.startswith("multipart/")


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    # Not get_content_charset(): it raises on some damaged RFC 2231 charset parameters.
    charset = _param(part, "content-type", "charset")
    text = _decode(data if isinstance(data, bytes) else b"", charset)
    text = _LINE_BREAK.sub("\n", _clean(text))
    if part.get_content_type() == "text/plain" and (
        (_param(part, "content-type", "format") or "").lower() == "flowed"
    ):
        delsp = (_param(part, "content-type", "delsp") or "").lower() == "yes"
        text = _unflow(text, delsp)
    return text


def _filename(part: Message) -> str | None:
    return _param(part, "content-disposition", "filename") or _param(part, "content-type", "name")


def _attachment_name(filename: str | None, content_type: str, number: int) -> str:
    """The sender's name made safe, else "attachment-N.ext" from the type."""
    name = _safe_filename(filename) if filename else ""
    if name.strip("."):  # "." and ".." name directories, not files
        return name
    fallback = ".txt" if content_type.startswith("text/") else ".bin"
    return f"attachment-{number}{_EXTENSIONS.get(content_type, fallback)}"


def _leaf_attachment(part: Message, content_type: str, number: int) -> ParsedAttachment:
    data = part.get_payload(decode=True)
    content_id = _first_id(part, "content-id")
    disposition = part.get_content_disposition()
    filename = _filename(part)
    return ParsedAttachment(
        filename=_attachment_name(filename, content_type, number),
        content_type=content_type,
        content=data if isinstance(data, bytes) else b"",
        content_id=content_id,
        inline=disposition == "inline" or (disposition is None and content_id is not None),
    )


def _message_attachment(
    part: Message, content_type: str, number: int, defects: list[str]
) -> ParsedAttachment:
    """A message/* part (a forwarded mail, a DSN's status fields) as one attachment."""
    inner = _subparts(part)
    if inner:
        content = b"".join(_serialise(message, defects) for message in inner)
    else:
        data = part.get_payload(decode=True)
        content = data if isinstance(data, bytes) else b""
    filename = _filename(part)
    if filename is None and inner:
        subject = _text(_raw(inner[0], "subject") or "")
        if subject and content_type in ("message/rfc822", "message/global"):
            filename = f"{subject}.eml"
    return ParsedAttachment(
        filename=_attachment_name(filename, content_type, number),
        content_type=content_type,
        content=content,
        content_id=_first_id(part, "content-id"),
        inline=False,
    )
