"""Taking personal data out of stored JSON (event payloads, audit snapshots, routing facts).

Two strengths. ``strip_content`` is for records about the person's own entities (their
customer record, tickets, messages): any text may be theirs (a subject, a note, a custom
field), so every string goes except under keys that never hold personal data (states,
enumerations, times). ``scrub`` is for everything else, which only mentions the person by
chance: strings and keys containing one of their identifiers (name, addresses, numbers) go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

ERASED = "[erased]"
"""What replaces erased text, and the subject an anonymised ticket keeps."""

MIN_NEEDLE = 3
"""Shorter identifiers would erase unrelated text (a two-letter name part, an initial)."""

_SAFE_KEYS = frozenset(
    {
        "action",
        "channel",
        "direction",
        "field",
        "fields",
        "kind",
        "metric",
        "previous_status",
        "priority",
        "purpose",
        "state",
        "status",
        "trigger",
        "type",
    }
)
"""Keys whose values are states, enumerations or field names, never a person's words."""


def _safe_key(key: str) -> bool:
    # Ids are numbers and stay anyway; a string "…_id" may be a Message-ID with an address.
    return key in _SAFE_KEYS or key.endswith("_at")


def strip_content(value: Any, *, safe: bool = False) -> Any:
    """``value`` with every string replaced by ``ERASED``, except under safe keys; numbers,
    booleans, nulls and the structure stay."""
    if isinstance(value, dict):
        return {
            key: strip_content(item, safe=safe or _safe_key(key)) for key, item in value.items()
        }
    if isinstance(value, list):
        return [strip_content(item, safe=safe) for item in value]
    if isinstance(value, str) and not safe:
        return ERASED
    return value


def needles_of(values: Iterable[str | None]) -> frozenset[str]:
    """The identifiers worth searching for, lower-cased."""
    return frozenset(
        value.strip().lower() for value in values if value and len(value.strip()) >= MIN_NEEDLE
    )


def mentions(text: str, needles: frozenset[str]) -> bool:
    lowered = text.lower()
    return any(needle in lowered for needle in needles)


def scrub(value: Any, needles: frozenset[str]) -> Any:
    """``value`` with each string mentioning a needle replaced by ``ERASED`` and each key
    mentioning one dropped (a refused recipient's address is a key)."""
    if isinstance(value, dict):
        return {
            key: scrub(item, needles) for key, item in value.items() if not mentions(key, needles)
        }
    if isinstance(value, list):
        return [scrub(item, needles) for item in value]
    if isinstance(value, str) and mentions(value, needles):
        return ERASED
    return value


MASK = "*"
"""What each character of a masked identifier becomes in free text."""


def mask(text: str, needles: frozenset[str]) -> str:
    """``text`` with every occurrence of a needle (any case) replaced by as many ``MASK``
    characters: positions in the text (the privacy findings' offsets) stay valid."""
    for needle in sorted(needles, key=len, reverse=True):
        text = re.sub(
            re.escape(needle), lambda found: MASK * len(found.group()), text, flags=re.IGNORECASE
        )
    return text
