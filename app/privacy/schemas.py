from __future__ import annotations

from datetime import datetime
from typing import Annotated

import regex  # type: ignore[import-untyped]  # no stubs published
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.core.types import reject_null
from app.privacy.models import FindingField
from app.routing.rules import MAX_PATTERN


def _compiles(pattern: str) -> str:
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"invalid regex: {exc}") from exc
    if regex.compile(pattern).match(""):
        raise ValueError("the regex matches an empty text: it would find nothing to mask")
    return pattern


PatternName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,99}$"),
    Field(description="A short key, in findings as `custom:<name>`.", examples=["account_number"]),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Kontonummer"]),
]
Regex = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PATTERN,
        description="A regular expression (Python `regex` syntax) searched in every message; "
        "a search slower than 50 ms on one text finds nothing there.",
        examples=[r"\b\d{4}-\d{10}\b"],
    ),
    AfterValidator(_compiles),
]


class PatternCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PatternName
    label: Label
    regex: Regex
    enabled: bool = True


class PatternUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    regex: Regex | None = None
    enabled: bool | None = None

    _not_null = field_validator("label", "regex", "enabled")(reject_null)


class PatternRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    label: str
    regex: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    version: int


class FindingRead(BaseModel):
    """A sensitive value in a message, masked; reveal it by id."""

    id: int
    field: FindingField = Field(description="The message field it is in.")
    kind: str = Field(
        description="dk_cpr, se_personnummer, se_samordningsnummer, no_fodselsnummer, "
        "no_d_nummer, fi_hetu, payment_card, iban, or `custom:<pattern name>`.",
    )
    start: int = Field(description="Where it starts in the field's text (characters).")
    end: int
    masked: str = Field(examples=["******-**34"])


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
        Field(description="Why you need to see the values; kept in the audit log."),
    ]
    finding_ids: list[int] | None = Field(
        default=None, max_length=1000, description="Only these findings; all when omitted."
    )


class RevealedFinding(BaseModel):
    id: int
    field: FindingField
    kind: str
    value: str = Field(examples=["010190-1234"])


class RevealRead(BaseModel):
    message_id: int
    findings: list[RevealedFinding]
