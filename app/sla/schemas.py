from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.types import Description, reject_null
from app.routing.rules import (
    AddTags,
    Assign,
    Notify,
    NotifyEmail,
    RaisePriority,
    RemoveTags,
    SetCategory,
    SetCustomField,
    SetPriority,
    SetQueue,
)
from app.sla.models import SlaMetric
from app.tickets.models import TicketPriority

SlaPolicyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Guld: svar inden for én time"]),
]
Minutes = Annotated[int, Field(ge=1, le=525_600, description="Minutes (at most a year).")]
MAX_STEPS = 10


class MetricTargets(BaseModel):
    """The targets of one priority, in minutes of the policy's time (business hours when the
    policy has a calendar); a target left out is not measured."""

    model_config = ConfigDict(extra="forbid")

    first_response: Minutes | None = None
    next_response: Minutes | None = None
    periodic_update: Minutes | None = None
    resolution: Minutes | None = None

    def minutes(self, metric: SlaMetric) -> int | None:
        value: int | None = getattr(self, metric.value)
        return value


Targets = dict[TicketPriority, MetricTargets]

EscalationAction = Annotated[
    SetQueue
    | SetPriority
    | RaisePriority
    | SetCategory
    | AddTags
    | RemoveTags
    | SetCustomField
    | Assign
    | Notify
    | NotifyEmail,
    Field(discriminator="type"),
]
"""The routing rules' actions that make sense without a new message: no automatic answer,
no closing, no other policy."""


class EscalationStep(BaseModel):
    """What to do when a target has used ``at_percent`` of its time (100: at the breach)."""

    model_config = ConfigDict(extra="forbid")

    at_percent: int = Field(ge=1, le=1000, examples=[80])
    metrics: list[SlaMetric] | None = Field(
        default=None, description="The targets the step is for; null: all of them."
    )
    actions: list[EscalationAction] = Field(min_length=1, max_length=20)

    @property
    def key(self) -> str:
        """The step's identity across edits of the policy: its moment and its targets, not
        its place in the list (inserting or removing a step must not make another one fire
        again or never). Editing its actions keeps the step."""
        metrics = ",".join(sorted(m.value for m in self.metrics)) if self.metrics else "*"
        return f"{self.at_percent}:{metrics}"


def _steps_in_order(steps: list[EscalationStep] | None) -> list[EscalationStep] | None:
    if steps is not None:
        percents = [step.at_percent for step in steps]
        if percents != sorted(percents):
            raise ValueError("escalation steps go in the order they fire: by at_percent")
        keys = [step.key for step in steps]
        if len(set(keys)) != len(keys):
            raise ValueError("two escalation steps have the same at_percent and metrics")
    return steps


class SlaPolicyCreate(BaseModel):
    """A new SLA policy: targets per priority and escalation steps. A routing rule's
    `set_sla_policy` action, or a queue's `sla_policy_id`, puts tickets on it."""

    model_config = ConfigDict(extra="forbid")

    name: SlaPolicyName
    description: Description | None = None
    calendar_id: int | None = Field(
        default=None, description="Count in this calendar's business hours; null: 24/7."
    )
    targets: Targets = Field(
        default_factory=dict,
        examples=[{"urgent": {"first_response": 30, "resolution": 240}}],
    )
    at_risk_percent: int = Field(
        default=80, ge=1, le=99, description="A target is at risk once this share is used."
    )
    escalations: list[EscalationStep] = Field(default_factory=list, max_length=MAX_STEPS)

    _ordered = field_validator("escalations")(_steps_in_order)


class SlaPolicyUpdate(BaseModel):
    """Changes to an SLA policy; fields left out stay as they are. The running targets of
    the policy's tickets keep their due times until the ticket changes next."""

    model_config = ConfigDict(extra="forbid")

    name: SlaPolicyName | None = None
    description: Description | None = Field(default=None, description="null clears it.")
    calendar_id: int | None = Field(default=None, description="null: count 24/7.")
    targets: Targets | None = None
    at_risk_percent: int | None = Field(default=None, ge=1, le=99)
    escalations: list[EscalationStep] | None = Field(default=None, max_length=MAX_STEPS)

    _not_null = field_validator("name", "targets", "at_risk_percent", "escalations")(reject_null)
    _ordered = field_validator("escalations")(_steps_in_order)


class SlaPolicyRead(BaseModel):
    """A service-level policy: targets per priority (minutes), counted in a calendar's
    business hours or 24/7, and the escalation steps that fire as a target runs out."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    calendar_id: int | None
    targets: Targets
    at_risk_percent: int
    escalations: list[EscalationStep]
    created_at: datetime
    updated_at: datetime
    version: int


class SlaTargetLive(BaseModel):
    """A target the ticket is running now."""

    metric: SlaMetric
    started_at: datetime
    due_at: datetime | None = Field(description="Null while paused.")
    remaining_seconds: int = Field(
        description="Until the due time, negative when overdue; while paused, the business "
        "time left."
    )
    paused: bool = Field(description="The ticket is pending on the customer.")
    at_risk: bool
    breached: bool
    breached_at: datetime | None


class EscalationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int = Field(description="The step's place in the policy's list when it fired, from 0.")
    step_key: str = Field(
        description="The step's identity: `at_percent` and its metrics (`*`: all), as in "
        "`80:*` or `100:first_response,next_response`. A step fires once per target under "
        "its key, whatever edits of the policy move it in the list.",
        examples=["80:*"],
    )
    at_percent: int
    fired_at: datetime
    outcome: str = Field(description="What the step's actions did.")


class SlaTargetRead(BaseModel):
    """One cycle of a target: running, paused, met or cancelled."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    metric: SlaMetric
    policy_id: int | None
    target_seconds: int
    calendar_id: int | None
    started_at: datetime
    due_at: datetime | None
    paused_at: datetime | None
    at_risk_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None
    cancelled_at: datetime | None
    escalation_level: int = Field(description="How many escalation steps fired for the target.")
    escalations: list[EscalationRead] = Field(default_factory=list)


class TicketSlaRead(BaseModel):
    ticket_id: int
    policy_id: int | None = Field(description="The policy in force: the ticket's or its queue's.")
    targets: list[SlaTargetRead] = Field(description="Every target cycle, oldest first.")


def policy_targets(raw: dict[str, Any]) -> Targets:
    """A stored policy's targets, typed."""
    return {TicketPriority(k): MetricTargets.model_validate(v) for k, v in raw.items()}


def policy_steps(raw: list[dict[str, Any]]) -> list[EscalationStep]:
    """A stored policy's escalation steps, typed."""
    return [EscalationStep.model_validate(step) for step in raw]
