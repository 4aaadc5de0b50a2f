from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.types import reject_null
from app.templates.models import BodyFormat, Template

PLACEHOLDER_HELP = """Placeholders (Jinja syntax, `{{ ticket.reference }}`):
`customer` (`name`, `first_name`, `email` — the primary address, `number` — the customer number,
`language`), `organisation` (`name`; empty without one), `ticket` (`number`, `reference` — as in
mail subjects, e.g. `[#100123]`, `subject`, `status`, `priority`, `category`, `queue` — the queue's
name, `tags`, `created_at` — use `|date('%d.%m.%Y')`, `custom_fields` — e.g.
`ticket.custom_fields.order_number`; a field the ticket lacks is an error when rendering, unless
given a `|default('')`), `agent` (`name`, `email`: who replies; for automatic mail the sender's
name), `status_link` (the customer's status page). Missing values are empty text.
Also `{% if %}`, `{% for %}` and `{% set x = ... %}`; filters: default, upper, lower, title,
capitalize, trim, truncate, length, first, last, join, escape, replace, dictsort, date.
No function calls. An unknown placeholder or field is refused when the template is saved."""

TemplateName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Tak for din henvendelse"]),
]
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(description="Suggested first for tickets of the same category.", examples=["Faktura"]),
]
Language = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=2, max_length=16),
    Field(
        description="Language tag (`da`, `sv`, `nb-no`); suggested first to customers of it.",
        examples=["da"],
    ),
]
Subject = Annotated[
    str,
    StringConstraints(min_length=1, max_length=998),
    Field(
        description="Subject template; line breaks are folded into spaces. " + PLACEHOLDER_HELP,
        examples=["Vedr. din ordre {{ ticket.reference }}"],
    ),
]
Body = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100_000),
    Field(
        description="Body template, as `body_format` says. " + PLACEHOLDER_HELP,
        examples=[
            "Kære {{ customer.first_name }},\n\ntak for din besked om ordre "
            "{{ ticket.custom_fields.ordrenummer|default('') }}. Vi vender tilbage hurtigst "
            "muligt.\n\nSe status her: {{ status_link }}\n\nVenlig hilsen\n{{ agent.name }}"
        ],
    ),
]


def _unique_ids(values: list[int]) -> list[int]:
    return sorted(set(values))


QueueIds = Annotated[
    list[int],
    Field(
        max_length=100,
        description="Queues the template is meant for; none: it serves every queue.",
        examples=[[3]],
    ),
    AfterValidator(_unique_ids),
]
BodyFormatField = Annotated[
    BodyFormat,
    Field(
        description="`text`: plain text, the HTML part is made from it (escaped, paragraphs "
        "and line breaks kept). `html`: HTML, the values put in are escaped; the plain-text "
        "part is made from the rendered HTML."
    ),
]


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TemplateName
    category: Category | None = None
    queue_ids: QueueIds = Field(default_factory=list)
    language: Language | None = None
    subject: Subject | None = Field(
        default=None, description="Omit to answer under the ticket's subject."
    )
    body: Body
    body_format: BodyFormatField = BodyFormat.text
    active: bool = Field(default=True, description="Inactive templates are not suggested.")


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TemplateName | None = None
    category: Category | None = Field(default=None, description="null clears it.")
    queue_ids: QueueIds | None = Field(default=None, description="Replaces them.")
    language: Language | None = Field(default=None, description="null clears it.")
    subject: Subject | None = Field(default=None, description="null clears it.")
    body: Body | None = None
    body_format: BodyFormatField | None = None
    active: bool | None = None

    _not_null = field_validator("name", "queue_ids", "body", "body_format", "active")(reject_null)


class TemplateFilters(BaseModel):
    category: str | None = None
    language: str | None = Field(default=None, description="Exact language tag, any case.")
    queue_id: int | None = Field(
        default=None, description="Templates serving this queue: bound to it, or to no queue."
    )
    active: bool | None = None


@dataclass(frozen=True)
class TemplateView:
    """A template with the queues it serves: what the API shows."""

    template: Template
    queue_ids: list[int]

    @property
    def id(self) -> int:
        return self.template.id

    @property
    def version(self) -> int:
        return self.template.version


class TemplateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    category: str | None
    queue_ids: list[int]
    language: str | None
    subject: str | None
    body: str
    body_format: BodyFormat
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int

    @model_validator(mode="before")
    @classmethod
    def _from_view(cls, data: Any) -> Any:
        if not isinstance(data, TemplateView):
            return data
        fields = {
            name: getattr(data.template, name) for name in cls.model_fields.keys() - {"queue_ids"}
        }
        return {**fields, "queue_ids": data.queue_ids}


class TemplateVersionRead(BaseModel):
    """One saved state of a template; version 1 is how it was created."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    name: str
    category: str | None
    queue_ids: list[int]
    language: str | None
    subject: str | None
    body: str
    body_format: BodyFormat
    active: bool
    saved_by_agent_id: int | None = Field(description="Who saved it; null for the system.")
    saved_at: datetime


class RenderedRead(BaseModel):
    """A template filled in for one ticket."""

    model_config = ConfigDict(from_attributes=True)

    subject: str | None = Field(
        description="null when the template has no subject.",
        examples=["Vedr. din ordre [#100123]"],
    )
    body_text: str = Field(examples=["Kære Åse,\n\ntak for din besked."])
    body_html: str = Field(examples=["<p>Kære Åse,</p>\n<p>tak for din besked.</p>"])


class SuggestionMatch(StrEnum):
    queue = "queue"
    """Bound to the ticket's queue (not merely serving every queue)."""
    category = "category"
    """Same category as the ticket."""
    language = "language"
    """In the customer's language."""


class TemplateSuggestion(BaseModel):
    template: TemplateRead
    matches: list[SuggestionMatch] = Field(
        description="Why it ranks where it does: queue before category before language."
    )
