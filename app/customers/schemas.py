from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.agents.schemas import LanguageTag
from app.core.external_ids import ExternalIds, external_ids_as_dict
from app.core.types import EmailAddress, reject_null, unique_in_order
from app.privacy.detectors import mask_values

Emails = Annotated[
    list[EmailAddress],
    Field(
        max_length=50,
        description="The customer's addresses, the primary one first; an address belongs to one "
        "customer only.",
        examples=[["åse@blåbær.dk"]],
    ),
    AfterValidator(unique_in_order),
]
Name = Annotated[str, Field(min_length=1, max_length=300, examples=["Åse Kjærgård"])]
Phone = Annotated[str, Field(min_length=1, max_length=50, examples=["+45 12 34 56 78"])]
CustomerNumber = Annotated[str, Field(min_length=1, max_length=100, examples=["K-1042"])]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    emails: Annotated[Emails, Field(min_length=1)]
    phone: Phone | None = None
    customer_number: CustomerNumber | None = None
    external_ids: ExternalIds = Field(default_factory=dict)
    organisation_id: int | None = Field(
        default=None,
        description="Left out: the organisation whose domains include the primary address's "
        "domain, when exactly one does. `null`: no organisation.",
    )
    language: LanguageTag | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class CustomerUpdate(BaseModel):
    """Fields left out stay; `null` clears the optional ones."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    emails: Emails | None = Field(default=None, description="Replaces the addresses, in order.")
    phone: Phone | None = None
    customer_number: CustomerNumber | None = None
    external_ids: ExternalIds | None = Field(
        default=None, description="Replaces all external ids; `{}` removes them."
    )
    organisation_id: int | None = None
    language: LanguageTag | None = None
    attributes: dict[str, Any] | None = Field(default=None, description="Replaces the object.")
    blocked: bool | None = Field(
        default=None,
        description="No mail is sent to a blocked customer's addresses (spam, abuse). Changing "
        "it needs the supervisor role or higher.",
    )

    _present_fields_not_null = field_validator("emails", "external_ids", "attributes", "blocked")(
        reject_null
    )


class CustomerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    emails: list[str] = Field(description="The primary address first.")
    phone: str | None
    customer_number: str | None
    external_ids: dict[str, str]
    organisation_id: int | None
    language: str | None
    attributes: Annotated[
        dict[str, Any],
        AfterValidator(mask_values),
        Field(description="Identity, card and account numbers in text values are masked."),
    ]
    blocked: bool = Field(description="No mail is sent to the customer's addresses.")
    created_at: datetime
    updated_at: datetime
    version: int

    _external_ids = field_validator("external_ids", mode="before")(external_ids_as_dict)

    @field_validator("emails", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        """The ORM's address rows (ordered by position) as plain addresses."""
        return [row if isinstance(row, str) else row.email for row in value]


class CustomerMergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into_customer_id: int = Field(description="The customer that receives everything and stays.")


class CustomerMergeRead(BaseModel):
    customer: CustomerRead = Field(description="The customer merged into, as it is now.")
    tickets_moved: int
    dropped_external_ids: dict[str, str] = Field(
        description="External ids of the merged customer in systems where the customer merged "
        "into has its own id already: those are kept, these were dropped."
    )
