"""Finding sensitive numbers in text, and masking them: pure functions, no I/O.

Each detector is a regex that finds candidates written the usual ways (with or without
separators), followed by a validation with ``python-stdnum`` (checksums, dates that exist), so
an order number or a phone number is not taken for an identity number.

Danish CPR numbers: ``stdnum.dk.cpr`` checks the embedded date and century only, because since
2007 numbers are issued that fail the old modulus 11 check. We follow it: a ten-digit number
with a real date (``DDMMYY-SSSS``, or the ten digits alone) is taken for a CPR number. That
masks some date-like ten-digit numbers too, which costs less than showing a real CPR number.
"""

from __future__ import annotations

import html as html_entities
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import regex  # type: ignore[import-untyped]  # no stubs published
import structlog
from stdnum import iban, luhn
from stdnum.dk import cpr
from stdnum.exceptions import ValidationError
from stdnum.fi import hetu
from stdnum.no import fodselsnummer
from stdnum.se import personnummer

CUSTOM_PREFIX = "custom:"
"""Kinds of findings by a configured pattern are this prefix and the pattern's name."""

PATTERN_TIMEOUT = 0.05
"""Seconds a configured pattern may search one text; a slower search masks the whole text."""

log = structlog.get_logger(__name__)


class Kind(StrEnum):
    dk_cpr = "dk_cpr"
    se_personnummer = "se_personnummer"
    se_samordningsnummer = "se_samordningsnummer"
    no_fodselsnummer = "no_fodselsnummer"
    no_d_nummer = "no_d_nummer"
    fi_hetu = "fi_hetu"
    payment_card = "payment_card"
    iban = "iban"


@dataclass(frozen=True)
class Span:
    """Where a sensitive value is in a text: ``text[start:end]``."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class CustomPattern:
    name: str
    pattern: regex.Pattern[str]


# Not part of a longer word or number; "&" and "#" keep numeric character references whole.
_BEFORE = r"(?<![\w&#+-])"
_AFTER = r"(?![\w-]|\+\d)"


def _compile(body: str) -> regex.Pattern[str]:
    return regex.compile(_BEFORE + body + _AFTER)


def _cpr(candidate: str) -> str | None:
    return Kind.dk_cpr if cpr.is_valid(candidate) else None


def _personnummer(candidate: str) -> str | None:
    digits = regex.sub(r"[^0-9]", "", candidate)
    separator = "+" if "+" in candidate else "-"
    date, serial = digits[:-4], digits[-4:]
    # A samordningsnummer is a personnummer with 60 added to the day.
    day = int(date[-2:])
    coordination = day > 60
    if coordination:
        date = f"{date[:-2]}{day - 60:02d}"
    try:
        personnummer.get_birth_date(f"{date}{separator}{serial}")
    except ValidationError:
        return None
    if not luhn.is_valid(digits[-10:]):
        return None
    return Kind.se_samordningsnummer if coordination else Kind.se_personnummer


def _fodselsnummer(candidate: str) -> str | None:
    number = candidate.replace(" ", "")
    if not fodselsnummer.is_valid(number):
        return None
    return Kind.no_d_nummer if int(number[0]) >= 4 else Kind.no_fodselsnummer


def _hetu(candidate: str) -> str | None:
    return Kind.fi_hetu if hetu.is_valid(candidate.upper()) else None


# Issuer prefixes and the lengths their cards have, so any Luhn-valid run of digits (one in
# ten is) is not taken for a card number.
_CARD_LENGTHS: list[tuple[tuple[int, int], frozenset[int]]] = [
    ((4, 4), frozenset({13, 16, 19})),  # Visa
    ((51, 55), frozenset({16})),  # Mastercard
    ((2221, 2720), frozenset({16})),  # Mastercard
    ((34, 34), frozenset({15})),  # American Express
    ((37, 37), frozenset({15})),
    ((36, 36), frozenset({14, 16})),  # Diners Club
    ((300, 305), frozenset({14, 16})),
    ((6011, 6011), frozenset({16, 19})),  # Discover
    ((644, 649), frozenset({16, 19})),
    ((65, 65), frozenset({16, 19})),
    ((3528, 3589), frozenset({16, 17, 18, 19})),  # JCB
    ((5019, 5019), frozenset({16})),  # Dankort
    ((50, 50), frozenset(range(12, 20))),  # Maestro
    ((56, 69), frozenset(range(12, 20))),
]


def _card(candidate: str) -> str | None:
    digits = regex.sub(r"[^0-9]", "", candidate)
    if not luhn.is_valid(digits):
        return None
    for (low, high), lengths in _CARD_LENGTHS:
        prefix = int(digits[: len(str(low))])
        if low <= prefix <= high and len(digits) in lengths:
            return Kind.payment_card
    return None


def _iban(candidate: str) -> str | None:
    return Kind.iban if iban.is_valid(candidate) else None


_Validator = Callable[[str], str | None]

_DETECTORS: list[tuple[regex.Pattern[str], _Validator]] = [
    # Finnish first: its century letter tells it apart from everything else.
    (
        _compile(r"\d{6}[-+ABCDEFYXWVU]\d{3}[0-9ABCDEFHJKLMNPRSTUVWXY]"),
        _hetu,
    ),
    (_compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?"), _card),
    (_compile(r"\d{4}([ -]?)\d{6}\1\d{4,5}"), _card),
    (_compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"), _iban),
    (_compile(r"\d{6} ?\d{5}"), _fodselsnummer),
    (_compile(r"(?:\d{2})?\d{6}[-+ ]?\d{4}"), _personnummer),
    (_compile(r"\d{6}[- ]?\d{4}"), _cpr),
]


def _shorter_ibans(candidate: str) -> Iterator[str]:
    """The candidate, then without its last group each time: an IBAN's regex also takes a
    following word of capitals and digits."""
    while len(candidate.replace(" ", "")) >= 15:
        yield candidate
        candidate = candidate.rsplit(" ", 1)[0] if " " in candidate else candidate[:-1]


# Every built-in kind is written with digits, capitals, spaces, "-" and "+" only, and has at
# least nine digits: the detectors run on such stretches alone, not on all of a long text.
_STRETCH = re.compile(r"[0-9A-Z][0-9A-Z +-]{8,}")
_MIN_DIGITS = 9
_LOOKAHEAD = 2
"""Characters after a stretch that the detectors' boundary checks look at."""


def _builtin(text: str) -> Iterator[Span]:
    for stretch in _STRETCH.finditer(text):
        if sum(char.isdigit() for char in stretch.group()) < _MIN_DIGITS:
            continue
        end = min(stretch.end() + _LOOKAHEAD, len(text))
        for pattern, validate in _DETECTORS:
            for match in pattern.finditer(text, stretch.start(), end, overlapped=True):
                candidates = (
                    _shorter_ibans(match.group()) if validate is _iban else iter([match.group()])
                )
                for candidate in candidates:
                    kind = validate(candidate)
                    if kind is not None:
                        yield Span(kind, match.start(), match.start() + len(candidate))
                        break


def _custom(text: str, patterns: Sequence[CustomPattern], where: str) -> Iterator[Span]:
    for custom in patterns:
        try:
            # concurrent: the search lets go of the GIL, so a long body does not hold up the
            # event loop while it runs beside it.
            matches = list(custom.pattern.finditer(text, timeout=PATTERN_TIMEOUT, concurrent=True))
        except TimeoutError:
            # Fail closed: what the pattern would have found is somewhere in the text.
            log.warning("privacy_pattern_timed_out", pattern=custom.name, text=where)
            yield Span(CUSTOM_PREFIX + custom.name, 0, len(text))
            continue
        for match in matches:
            if match.end() > match.start():
                yield Span(CUSTOM_PREFIX + custom.name, match.start(), match.end())


_TAG = regex.compile(r"<[^>]*>")
_ENTITY = regex.compile(r"&#?\w+;")
_MARKUP = regex.compile(r"<[^>]*>|&#?\w+;")


def detect(
    text: str, patterns: Sequence[CustomPattern] = (), *, where: str = "a text"
) -> list[Span]:
    """The sensitive values in the text, in order, none overlapping: where two detectors claim
    the same characters, the longer finding wins, then the detector listed first. A configured
    pattern too slow for the text claims all of it, and is logged naming ``where`` it was."""
    return _without_overlaps([*_builtin(text), *_custom(text, patterns, where)])


def _without_overlaps(found: Sequence[Span]) -> list[Span]:
    order = {span: index for index, span in enumerate(found)}
    kept: list[Span] = []
    for span in sorted(found, key=lambda s: (-(s.end - s.start), order[s])):
        if all(span.end <= other.start or span.start >= other.end for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def detect_html(
    html: str, patterns: Sequence[CustomPattern] = (), *, where: str = "a text"
) -> list[Span]:
    """``detect`` on the text an HTML body shows, so a number split by tags or written with
    ``&nbsp;`` is found too, and on the HTML as written, for values in attributes (a ``tel:``
    link); the spans are on the HTML itself (masking skips the markup)."""
    pieces: list[str] = []
    # Per piece of shown text: where it starts in the shown text, where in the HTML, and the
    # length it has in the HTML when it is one character standing for a character reference.
    starts: list[int] = []
    origins: list[tuple[int, int | None]] = []
    shown_length = 0

    def keep(piece: str, at: int, reference_length: int | None) -> None:
        nonlocal shown_length
        if piece:
            pieces.append(piece)
            starts.append(shown_length)
            origins.append((at, reference_length))
            shown_length += len(piece)

    position = 0
    for markup in _MARKUP.finditer(html):
        keep(html[position : markup.start()], position, None)
        reference = markup.group()
        if reference.startswith("&"):
            shown = " " if reference == "&nbsp;" else html_entities.unescape(reference)[:1]
            keep(shown, markup.start(), len(reference))
        position = markup.end()
    keep(html[position:], position, None)

    def in_html(index: int) -> tuple[int, int]:
        piece = bisect_right(starts, index) - 1
        at, reference_length = origins[piece]
        if reference_length is not None:
            return at, at + reference_length
        offset = at + index - starts[piece]
        return offset, offset + 1

    in_text = [
        Span(span.kind, in_html(span.start)[0], in_html(span.end - 1)[1])
        for span in detect("".join(pieces), patterns, where=where)
    ]
    return _without_overlaps([*in_text, *detect(html, patterns, where=where)])


# How many letters and digits masking keeps visible at each end of a value.
_KEEP_END: dict[str, int] = {Kind.payment_card: 4}
_KEEP_START: dict[str, int] = {Kind.iban: 2}
_DEFAULT_KEEP_END = 2
MASK = "*"

_QUOTED = regex.compile(r"\"[^\"]*\"|'[^']*'")


def _unmaskable_html(html: str) -> set[int]:
    """Positions that masking must not touch to keep the HTML valid: tag and attribute names.
    Text and quoted attribute values can be masked."""
    fixed: set[int] = set()
    for tag in _TAG.finditer(html):
        values = {
            i
            for quoted in _QUOTED.finditer(tag.group())
            for i in range(tag.start() + quoted.start() + 1, tag.start() + quoted.end() - 1)
        }
        fixed.update(i for i in range(tag.start(), tag.end()) if i not in values)
    return fixed


def _references(html: str) -> dict[int, tuple[int, bool]]:
    """Where each character reference starts: its end, and whether it stands for a letter or
    digit, masked whole as the one character it shows (``&#57;`` is a 9). Others (``&nbsp;``)
    are separators and stay."""
    return {
        entity.start(): (entity.end(), html_entities.unescape(entity.group())[:1].isalnum())
        for entity in _ENTITY.finditer(html)
    }


_configured: tuple[CustomPattern, ...] = ()
"""The enabled configured patterns, compiled, as ``app.privacy.patterns`` last loaded them."""


def configured_patterns() -> tuple[CustomPattern, ...]:
    return _configured


def set_configured_patterns(patterns: Sequence[CustomPattern]) -> None:
    """Replace the configured patterns ``mask_text`` applies (one assignment: a read in
    progress keeps the tuple it started with)."""
    global _configured
    _configured = tuple(patterns)


def mask_text(text: str) -> str:
    """A text kept outside messages (a ticket's subject, an event) with the values the
    built-in detectors and the enabled configured patterns find in it masked; a configured
    pattern too slow for the text masks all of it."""
    return mask(text, detect(text, _configured, where="a text outside messages"))


def mask_values(value: Any) -> Any:
    """``mask_text`` on every string in a JSON value (custom fields, attributes), keys kept."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: mask_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_values(item) for item in value]
    return value


def mask(text: str, spans: Sequence[Span], *, html: bool = False) -> str:
    """The text with each span's letters and digits starred, but for the few at its ends that
    tell values apart (``******-**34``); separators and the length stay."""
    if not spans:
        return text
    fixed = _unmaskable_html(text) if html else set()
    references = _references(text) if html else {}
    # Each character of the result is a piece of the text: one character, or a whole reference.
    chars = list(text)
    for span in spans:
        shown: list[tuple[int, int]] = []
        i, end = max(span.start, 0), min(span.end, len(text))
        while i < end:
            if i in references:
                stop, maskable = references[i]
                if maskable:
                    shown.append((i, stop))
                i = stop
                continue
            if text[i].isalnum() and i not in fixed:
                shown.append((i, i + 1))
            i += 1
        # Never keep more than a third visible, so a short custom match is still hidden.
        budget = len(shown) // 3
        keep_start = min(_KEEP_START.get(span.kind, 0), budget)
        keep_end = min(_KEEP_END.get(span.kind, _DEFAULT_KEEP_END), budget - keep_start)
        for start, stop in shown[keep_start : len(shown) - keep_end]:
            chars[start:stop] = [MASK, *[""] * (stop - start - 1)]
    return "".join(chars)
