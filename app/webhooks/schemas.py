from __future__ import annotations

import difflib
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.core.types import Description, reject_null
from app.events.schemas import EVENT_TYPES
from app.webhooks.models import WebhookDeliveryStatus

TargetUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    Field(
        description="Where events are POSTed: an http(s) URL of a public host.",
        examples=["https://hooks.example.com/ticketry"],
    ),
]
ALL_EVENTS = "*"


def _published(name: str) -> str:
    """A misspelt type would subscribe to nothing, silently."""
    if name == ALL_EVENTS or name in EVENT_TYPES:
        return name
    close = difflib.get_close_matches(name, EVENT_TYPES.keys(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"{name!r} is no event type (GET /api/v1/events/types lists them, "
        f'"{ALL_EVENTS}" is every one).{hint}'
    )


EventType = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_published),
    Field(examples=["ticket.created"]),
]
EventTypes = Annotated[
    list[EventType],
    Field(
        min_length=1,
        max_length=100,
        description='Event types to send, or `["*"]` for every event.',
        examples=[["ticket.created", "message.created"]],
    ),
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: TargetUrl
    event_types: EventTypes
    active: bool = True
    description: Description | None = None


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: TargetUrl | None = None
    event_types: EventTypes | None = None
    active: bool | None = Field(
        default=None, description="true switches a disabled webhook back on."
    )
    description: Description | None = Field(default=None, description="null clears it.")

    _not_null = field_validator("url", "event_types", "active")(reject_null)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    event_types: list[str]
    active: bool
    description: str | None
    disabled_reason: str | None = Field(
        description="Why the service switched the webhook off, when it did."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until when deliveries are also signed with the secret before the last "
        "rotation."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookWithSecret(WebhookRead):
    """Returned once, on creation and on rotation: the only time the secret is shown."""

    secret: str = Field(
        description="The signing secret (`whsec_...`); keep it, it is not shown again."
    )


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: int
    status: WebhookDeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class PingResult(BaseModel):
    delivered: bool = Field(description="Whether the endpoint answered 2xx.")
    status_code: int | None
    latency_ms: int | None
    error: str | None
