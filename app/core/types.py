"""Shared field types for the API schemas."""

from __future__ import annotations

from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field


def normalise_email(value: str) -> str:
    """A syntactically valid address, lower-cased, so one person has one spelling.

    Single-label and ``.test`` domains are accepted: support teams test with them.
    """
    try:
        checked = validate_email(
            value, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    return checked.normalized.lower()


EmailAddress = Annotated[
    str,
    Field(max_length=320, examples=["kunde@example.dk"]),
    AfterValidator(normalise_email),
]

Description = Annotated[str, Field(max_length=10_000)]
"""Free text about a queue or a team."""


def email_domain(address: str) -> str:
    """The part after the @, lower-cased."""
    return address.rpartition("@")[2].lower()


def unique_in_order(values: list[str]) -> list[str]:
    """For list fields: each value once, where it first appears (after normalisation
    "Støtte@X.dk" and "støtte@x.dk" are one address, kept once)."""
    return list(dict.fromkeys(values))


def reject_null(value: Any) -> Any:
    """For update schemas: a field that may be left out (unchanged) but has no empty state.

    Use as ``_not_null = field_validator("a", "b")(reject_null)``; it runs only for sent fields.
    """
    if value is None:
        raise ValueError("may be left out, but not null")
    return value
