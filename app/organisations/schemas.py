from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.core.types import normalise_email, reject_null


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
SystemName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="The other system's name: lower-case letters, digits, `_`, `.` and `-`.",
        examples=["crm"],
    ),
]


def unique_in_order(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Domains = Annotated[
    list[MailDomain],
    Field(
        max_length=100,
        description="Mail domains of the organisation; a new customer with an address in one "
        "of them is linked to it.",
    ),
    AfterValidator(unique_in_order),
]
ExternalIdValue = Annotated[str, Field(min_length=1, max_length=200, examples=["A-17"])]
ExternalIds = Annotated[
    dict[SystemName, ExternalIdValue],
    Field(
        description="The entity's id in other systems, one per system; an id belongs to one "
        "entity only.",
        examples=[{"crm": "A-17"}],
    ),
]


def external_ids_as_dict(value: Any) -> Any:
    """Read schemas show the ORM's external-id rows as one ``{system: id}`` object."""
    if isinstance(value, dict):
        return value
    return {row.system: row.external_id for row in value}


class OrganisationCreate(BaseModel):
    name: str = Field(min_length=1, max_length=300, examples=["Søstrene Ørsted ApS"])
    domains: Domains = Field(default_factory=list)
    external_ids: ExternalIds = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict, examples=[{"segment": "smb"}])


class OrganisationUpdate(BaseModel):
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
