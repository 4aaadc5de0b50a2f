"""Telling what a reply adds from the history it quotes and the signature below it.

The rules are deliberately cautious: a wrong cut hides what a customer wrote, a missed cut only
shows some history. So `split_reply` returns None whenever the shape is not clearly recognised,
and the caller then keeps the full text.
"""

from __future__ import annotations

import re

# The line a client writes above the quoted mail. Each language ends it differently:
#   en  On Mon, 1 Jan 2024 at 10:00, Ann <ann@example.com> wrote:
#   de  Am 01.01.2024 um 10:00 schrieb Hans <hans@example.de>:
#   da  Den 1. jan. 2024 kl. 10.00 skrev Jens <jens@example.dk>:
#   no  man. 1. jan. 2024 kl. 10:00 skrev Ola <ola@example.no>:   (Gmail: no "Den")
#   sv  Den 1 jan. 2024 kl. 10:00 skrev Sven <sven@example.se>:
#   fi  ma 1. tammik. 2024 klo 10.00 Matti (matti@example.fi) kirjoitti:
#   fi  Matti <matti@example.fi> kirjoitti 1.1.2024 kello 10.00:     (Apple Mail)
_ATTRIBUTION = re.compile(
    r"^(?:.*\bwrote|.*\bschrieb\b.*|.*\bskrev\b.*|.*\bkirjoitti\b.*):\s*$", re.IGNORECASE
)
# Ordinary sentences can end like that too ("Den 5. maj skrev jeg til jer:"), so an attribution
# must also carry a clock time or an address, or be followed by "> " lines.
_TIME_OR_ADDRESS = re.compile(r"@|\b\d{1,2}[:.]\d{2}\b")
# Gmail wraps a long attribution over two or three lines; the earlier lines are taken in only
# when the joined text starts the way attributions start (a leading word or a date), so a
# signature name just above is not swallowed.
_ATTRIBUTION_START = re.compile(r"^(?:on|am|den|\w{1,4}\.?,?\s+\d|\d)\b", re.IGNORECASE)
_MAX_ATTRIBUTION_CHARS = 300

# Outlook puts a header block above the history instead:
#   From: Ann            Fra: / Från: / Lähettäjä: / Von:
#   Sent: Monday, ...    Sendt: / Skickat: / Lähetetty: / Gesendet:
# (newer versions write Date: / Dato: / Datum: instead of Sent:).
# Gmail renders the labels bold in HTML, which becomes "*From:*" in text.
_BLOCK_FROM = re.compile(r"^\*?(?:from|fra|från|lähettäjä|von)\s*:", re.IGNORECASE)
_BLOCK_SENT = re.compile(
    r"^\*?(?:sent|date|sendt|dato|skickat|datum|lähetetty|päivämäärä|gesendet)\s*:",
    re.IGNORECASE,
)
_BLOCK_LOOKAHEAD = 4
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{3,}\s*(?:original message|oprindelig meddelelse|ursprungligt meddelande"
    r"|opprinnelig melding|alkuperäinen viesti|ursprüngliche nachricht)\s*-{3,}\s*$",
    re.IGNORECASE,
)
# Newer Outlook draws a line of underscores above the header block instead.
_UNDERSCORE_RULE = re.compile(r"^\s*_{10,}\s*$")


def split_reply(text: str) -> str | None:
    """The text the sender wrote themselves, without quoted history and signature.

    None when nothing could be separated reliably: no quote and no signature found, quotes
    interleaved with answers, or nothing left once the history is gone.
    """
    lines = text.splitlines()
    cut = _history_start(lines)
    if cut == _LEAVE_WHOLE:
        return None
    head = lines if cut is None else lines[:cut]
    signature = _signature_start(head)
    if signature is not None:
        head = head[:signature]
    if cut is None and signature is None:
        return None
    new = "\n".join(line.rstrip() for line in head).strip()
    return new or None


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


# Returned by _history_start for answers written between the quotes: nothing can be cut.
_LEAVE_WHOLE = -1


def _history_start(lines: list[str]) -> int | None:
    """Index of the first line of quoted history, None if there is none, or _LEAVE_WHOLE."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">"):
            # "> " lines with nothing but more of them (or blank lines) below: a plain quote.
            # Anything unquoted after them means answers between the quotes: leave it whole.
            return index if _only_quotes_from(lines, index) else _LEAVE_WHOLE
        # Every other marker has a "-" rule or a colon; most lines have neither, and the
        # regular expressions are then skipped (long texts stay fast).
        if stripped.startswith("-") and _ORIGINAL_MESSAGE.match(stripped):
            return index
        if ":" not in stripped:
            continue
        if _is_header_block(lines, index):
            return _rule_above(lines, index)
        attribution = _attribution_at(lines, index)
        if attribution is not None:
            start, end = attribution
            after = _next_content(lines, end + 1)
            if after is not None and _is_quoted(lines[after]):
                return start if _only_quotes_from(lines, after) else _LEAVE_WHOLE
            return start
    return None


def _only_quotes_from(lines: list[str], index: int) -> bool:
    return all(_is_quoted(line) or not line.strip() for line in lines[index:])


def _next_content(lines: list[str], index: int) -> int | None:
    return next((i for i in range(index, len(lines)) if lines[i].strip()), None)


def _is_header_block(lines: list[str], index: int) -> bool:
    if not _BLOCK_FROM.match(lines[index].strip()):
        return False
    following = lines[index + 1 : index + 1 + _BLOCK_LOOKAHEAD]
    return any(_BLOCK_SENT.match(line.strip()) for line in following)


def _rule_above(lines: list[str], index: int) -> int:
    above = index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    return above if above >= 0 and _UNDERSCORE_RULE.match(lines[above]) else index


def _attribution_at(lines: list[str], end: int) -> tuple[int, int] | None:
    """(first, last) line of an attribution ending at line `end`, or None."""
    last = lines[end].strip()
    if not last.endswith(":") or not _ATTRIBUTION.match(last):
        return None
    start = end
    # Take in up to two wrapped lines above when the joined text reads as one attribution.
    for candidate in (end - 1, end - 2):
        if candidate < 0 or not lines[candidate].strip() or _is_quoted(lines[candidate]):
            break
        joined = " ".join(line.strip() for line in lines[candidate : end + 1])
        if len(joined) <= _MAX_ATTRIBUTION_CHARS and _ATTRIBUTION_START.match(joined):
            start = candidate
    joined = " ".join(line.strip() for line in lines[start : end + 1])
    if len(joined) > _MAX_ATTRIBUTION_CHARS:
        return None
    after = _next_content(lines, end + 1)
    followed_by_quote = after is not None and _is_quoted(lines[after])
    if followed_by_quote or _TIME_OR_ADDRESS.search(joined):
        return start, end
    return None


def _signature_start(lines: list[str]) -> int | None:
    """The last "-- " line (RFC 3676 4.3); many clients drop its trailing space."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].rstrip() == "--":
            return index
    return None
