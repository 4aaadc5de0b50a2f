"""What the rules can look at: the field paths, their kinds, and the facts of one event.

The service fills ``Facts.values`` with one entry per field path it knows (a flat mapping,
prefixed fields under their full dotted path, e.g. ``"customer.attributes.segment"``); a
missing key means the value is absent. The ``time.*`` fields are computed by the engine from
``Facts.now`` and the rule set's business hours, so that simulating a rule set at another
moment is a matter of passing another ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, get_args


class Trigger(StrEnum):
    """The events a rule can run on."""

    ticket_created = "ticket_created"
    message_received = "message_received"
    ticket_updated = "ticket_updated"
    scheduled = "scheduled"
    """Run by the scheduler on every open ticket, every few seconds: time-based rules."""


EVENT_TRIGGERS = frozenset(
    {Trigger.ticket_created, Trigger.message_received, Trigger.ticket_updated}
)
"""The triggers of something happening to a ticket, as opposed to time passing."""


class ValueKind(StrEnum):
    """What a field holds; decides which operators and values a condition on it may use."""

    text = "text"
    text_list = "text_list"
    """A list of strings: a string operator holds when any element matches."""
    boolean = "boolean"
    number = "number"
    any = "any"
    """Free-form data (attributes, custom fields, form fields): every operator is allowed and a
    value of the wrong type simply does not match."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    kind: ValueKind
    choices: frozenset[str] | None = None
    """The only values the field takes; a condition comparing it with anything else is a
    mistake caught when the rules are saved."""
    computed: bool = False
    """Computed by the engine (the clock), never read from ``Facts.values``."""
    triggers: frozenset[Trigger] | None = None
    """The only triggers whose facts have the field (None: all); a rule that runs on another
    trigger and asks for it is a mistake caught when the rules are saved."""


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
"""In ``datetime.weekday()`` order."""
CHANNELS = frozenset({"email", "web", "api", "phone"})
PRIORITIES = frozenset({"low", "normal", "high", "urgent"})
STATUSES = frozenset({"new", "open", "pending", "on_hold", "solved", "closed"})

_TEXT = FieldSpec(ValueKind.text)
_TEXTS = FieldSpec(ValueKind.text_list)
_NUMBER = FieldSpec(ValueKind.number)
_BOOLEAN = FieldSpec(ValueKind.boolean)
_ANY = FieldSpec(ValueKind.any)
_HOURS = FieldSpec(ValueKind.number, triggers=frozenset({Trigger.scheduled}))
_SCHEDULED_FLAG = FieldSpec(ValueKind.boolean, triggers=frozenset({Trigger.scheduled}))


def _on_events(spec: FieldSpec) -> FieldSpec:
    """The spec for a field only an event's facts have (a message, a form, the customer)."""
    return FieldSpec(spec.kind, spec.choices, spec.computed, EVENT_TRIGGERS)


FIELDS: Mapping[str, FieldSpec] = {
    "message.recipients": _on_events(_TEXTS),
    "message.to": _on_events(_TEXTS),
    "message.cc": _on_events(_TEXTS),
    "message.sender": _on_events(_TEXT),
    "message.sender_domain": _on_events(_TEXT),
    "message.subject": _on_events(_TEXT),
    "message.body": _on_events(_TEXT),
    "message.channel": _on_events(FieldSpec(ValueKind.text, CHANNELS)),
    "message.has_attachments": _on_events(_BOOLEAN),
    "message.attachment_types": _on_events(_TEXTS),
    "message.attachment_names": _on_events(_TEXTS),
    "language": _TEXT,
    "customer.name": _TEXT,
    "customer.email": _TEXT,
    "customer.number": _TEXT,
    "customer.vip": _BOOLEAN,
    "customer.segment": _TEXT,
    # Counted and looked up per ticket: too slow for the scheduler's pass over every ticket.
    "customer.open_tickets": _on_events(_NUMBER),
    "organisation.name": _on_events(_TEXT),
    "ticket.queue_id": _NUMBER,
    "ticket.queue": _TEXT,
    "ticket.tags": _TEXTS,
    "ticket.priority": FieldSpec(ValueKind.text, PRIORITIES),
    "ticket.status": FieldSpec(ValueKind.text, STATUSES),
    "ticket.category": _TEXT,
    "ticket.channel": FieldSpec(ValueKind.text, CHANNELS),
    "ticket.assignee_id": _NUMBER,
    "ticket.team_id": _NUMBER,
    # Hours (with decimals) until the scheduler's moment, for time-based rules.
    "ticket.hours_since_created": _HOURS,
    "ticket.hours_since_updated": _HOURS,
    "ticket.hours_since_status_changed": _HOURS,
    "ticket.hours_since_customer_message": _HOURS,
    "ticket.hours_since_agent_reply": _HOURS,
    "ticket.follow_up_reached": _SCHEDULED_FLAG,
    "sla.hours_until_due": _HOURS,
    "sla.breached": _SCHEDULED_FLAG,
    "sla.at_risk": _SCHEDULED_FLAG,
    "time.weekday": FieldSpec(ValueKind.text, frozenset(WEEKDAYS), computed=True),
    "time.hour": FieldSpec(ValueKind.number, computed=True),
    "time.business_hours": FieldSpec(ValueKind.boolean, computed=True),
}
"""Every fixed field path."""

PREFIXED_FIELDS: Mapping[str, FieldSpec] = {
    "form.": _on_events(_ANY),
    "customer.attributes.": _ANY,
    "customer.external_ids.": _TEXT,
    "organisation.attributes.": _on_events(_ANY),
    "organisation.external_ids.": _on_events(_TEXT),
    "ticket.custom_fields.": _ANY,
}
"""Families of field paths: the prefix followed by a name of the admin's choosing."""


def field_spec(path: str) -> FieldSpec | None:
    """The spec of a field path, or None when the rules know no such field."""
    spec = FIELDS.get(path)
    if spec is not None:
        return spec
    for prefix, prefixed in PREFIXED_FIELDS.items():
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefixed
    return None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the rules may know about one event; evaluation reads nothing else."""

    trigger: Trigger
    now: datetime
    """Aware; the ``time.*`` fields are this moment in the business-hours time zone."""
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.now.utcoffset() is None:
            raise ValueError("Facts.now must be an aware datetime")
