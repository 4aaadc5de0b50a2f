from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.core.external_ids import ExternalIds, external_ids_as_dict
from app.core.types import normalise_email, reject_null, unique_in_order


def normalise_domain(value: str) -> str:
    """A mail domain spelled as it appears in a normalised address, so it matches customers'
    email domains (IDNA and case folded the same way)."""
    try:
        return normalise_email(f"postmaster@{value.strip()}").rpartition("@")[2]
    except ValueError as exc:
        raise ValueError(f"not a valid mail domain: {value!r}") from exc


MailDomain = Annotated[
    str,
    Field(min_length=1, max_length=253, examples=["blåbær.dk"]),
    AfterValidator(normalise_domain),
]
Domains = Annotated[
    list[MailDomain],
    Field(
        max_length=100,
        description="Mail domains of the organisation; a new customer with an address in one "
        "of them is linked to it.",
    ),
    AfterValidator(unique_in_order),
]


class OrganisationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300, examples=["Søstrene Ørsted ApS"])
    domains: Domains = Field(default_factory=list)
    external_ids: ExternalIds = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict, examples=[{"segment": "smb"}])


class OrganisationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=300)
    domains: Domains | None = None
    external_ids: ExternalIds | None = Field(
        default=None, description="Replaces all external ids; `{}` removes them."
    )
    attributes: dict[str, Any] | None = Field(default=None, description="Replaces the object.")

    _present_fields_not_null = field_validator("name", "domains", "external_ids", "attributes")(
        reject_null
    )


class OrganisationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    domains: list[str]
    external_ids: dict[str, str]
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int

    _external_ids = field_validator("external_ids", mode="before")(external_ids_as_dict)
