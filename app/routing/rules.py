"""The routing rule language: what admins write (as JSON or YAML) and what is saved.

A rule set is optional business hours and an ordered list of rules; a rule is triggers, a
condition tree and actions. Everything that can be checked without the database is checked
here, with the error located at the faulty part (``rules.3.when.all.1.field``): unknown fields,
operators that make no sense for a field, values of the wrong type, regexes that do not
compile. Whether queue 3 exists is the service's question.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex  # type: ignore[import-untyped]  # no stubs published
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.core.types import EmailAddress
from app.routing.facts import FIELDS, PREFIXED_FIELDS, Trigger, ValueKind, Weekday, field_spec
from app.routing.text import fold, words

MAX_RULES = 1000
MAX_CONDITIONS = 200
"""Per rule, counting groups and leaves."""
MAX_DEPTH = 10
MAX_VALUES = 1000
"""Values of an ``in``/``not_in``/``words`` condition."""
MAX_PATTERN = 1000


def _invalid(message: str) -> PydanticCustomError:
    # A custom error keeps the message as written, without pydantic's "Value error, " prefix.
    return PydanticCustomError("invalid_rule", message)


class _Strict(BaseModel):
    """Unknown keys are errors: a typo such as ``queue: 3`` must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True)


# --- Conditions --------------------------------------------------------------------------


class Operator(StrEnum):
    """How a condition compares a field with its value.

    String comparisons ignore case unless ``case_sensitive``; ``words`` also ignores accents
    and matches whole words only. On a list field (recipients, tags, attachment types) a
    condition holds when any element matches; ``contains`` on a list asks for an element and
    ``in`` for any element among the values. ``not_equals`` and ``not_in`` are the exact
    negations (no element matches; an absent value matches), but a value of a type the
    condition cannot compare with matches neither way. ``gt``/``gte``/``lt``/``lte`` compare
    numbers, or dates and datetimes given as ISO text. ``exists: true`` holds when the field
    has a value other than an empty string or list. ``regex`` searches (it is not anchored)
    with a time bound; a search that runs out of time counts as not matched.
    """

    equals = "equals"
    not_equals = "not_equals"
    in_ = "in"
    not_in = "not_in"
    contains = "contains"
    starts_with = "starts_with"
    ends_with = "ends_with"
    regex = "regex"
    words = "words"
    gt = "gt"
    gte = "gte"
    lt = "lt"
    lte = "lte"
    exists = "exists"


EQUALITY_OPERATORS = frozenset({Operator.equals, Operator.not_equals})
MEMBERSHIP_OPERATORS = frozenset({Operator.in_, Operator.not_in})
SUBSTRING_OPERATORS = frozenset({Operator.contains, Operator.starts_with, Operator.ends_with})
ORDER_OPERATORS = frozenset({Operator.gt, Operator.gte, Operator.lt, Operator.lte})
TEXT_OPERATORS = SUBSTRING_OPERATORS | {Operator.regex, Operator.words}
_ALL_OPERATORS = frozenset(Operator)

OPERATORS_BY_KIND: dict[ValueKind, frozenset[Operator]] = {
    ValueKind.text: _ALL_OPERATORS - ORDER_OPERATORS,
    ValueKind.text_list: _ALL_OPERATORS - ORDER_OPERATORS,
    ValueKind.boolean: EQUALITY_OPERATORS | {Operator.exists},
    ValueKind.number: EQUALITY_OPERATORS
    | MEMBERSHIP_OPERATORS
    | ORDER_OPERATORS
    | {Operator.exists},
    ValueKind.any: _ALL_OPERATORS,
}

Scalar = str | bool | int | float
"""A plain value, as a custom field holds."""


def is_number(value: object) -> bool:
    """A number and not a bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_moment(value: object) -> dt.datetime | dt.date | None:
    """An ISO date or datetime (string or object), or None when ``value`` is neither."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


class FieldCondition(_Strict):
    """A test of one field: ``{field: message.subject, op: words, value: [faktura]}``."""

    field: str
    op: Operator
    value: Any = None
    case_sensitive: bool = False
    """Only for string comparisons; ``words`` always ignores case and accents."""

    @field_validator("field")
    @classmethod
    def _known_field(cls, path: str) -> str:
        if field_spec(path) is None:
            known = [*FIELDS, *(prefix + "<name>" for prefix in PREFIXED_FIELDS)]
            close = difflib.get_close_matches(path, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise _invalid(f"unknown field {path!r}{hint}")
        return path

    @field_validator("op")
    @classmethod
    def _operator_fits_field(cls, op: Operator, info: ValidationInfo) -> Operator:
        spec = field_spec(info.data["field"]) if "field" in info.data else None
        if spec is not None and op not in OPERATORS_BY_KIND[spec.kind]:
            allowed = ", ".join(sorted(OPERATORS_BY_KIND[spec.kind]))
            raise _invalid(f"{op} does not apply to a {spec.kind} field; use one of {allowed}")
        return op

    @field_validator("value", mode="before")
    @classmethod
    def _value_fits_operator(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dt.date):
            # YAML reads an unquoted 2024-05-01 as a date; keep the ISO text so the JSON and
            # YAML forms of a rule are the same.
            value = value.isoformat()
        if "op" not in info.data or "field" not in info.data:
            return value
        spec = field_spec(info.data["field"])
        assert spec is not None  # the field validator let it through
        _check_value(info.data["op"], spec.kind, spec.choices, value)
        return value

    @field_validator("case_sensitive")
    @classmethod
    def _case_applies(cls, case_sensitive: bool, info: ValidationInfo) -> bool:
        if case_sensitive and info.data.get("op") == Operator.words:
            raise _invalid("words always ignore case and accents")
        return case_sensitive

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Leave the default out so a YAML leaf stays one short line.
        data: dict[str, Any] = handler(self)
        if not self.case_sensitive:
            del data["case_sensitive"]
        return data


def _check_value(op: Operator, kind: ValueKind, choices: frozenset[str] | None, value: Any) -> None:
    """Raise when ``value`` cannot be what ``op`` compares a ``kind`` field with."""
    if op is Operator.exists:
        if not isinstance(value, bool):
            raise _invalid("exists takes true or false")
    elif op is Operator.words:
        phrases = [value] if isinstance(value, str) else value
        for phrase in _checked_list(op, phrases):
            if not isinstance(phrase, str) or not words(fold(phrase)):
                raise _invalid("a trigger word needs at least one letter or digit")
    elif op in MEMBERSHIP_OPERATORS:
        for item in _checked_list(op, value):
            _check_equality_value(kind, choices, item)
    elif op in TEXT_OPERATORS:
        if not isinstance(value, str) or not value:
            raise _invalid(f"{op} takes a non-empty string")
        if op is Operator.regex:
            _check_pattern(value)
    elif op in ORDER_OPERATORS:
        if kind is ValueKind.number and not is_number(value):
            raise _invalid(f"{op} on a number field takes a number")
        if not is_number(value) and parse_moment(value) is None:
            raise _invalid(f"{op} takes a number or an ISO date or datetime")
    else:
        _check_equality_value(kind, choices, value)


def _checked_list(op: Operator, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
        raise _invalid(f"{op} takes a list of 1 to {MAX_VALUES} values")
    return value


def _check_equality_value(kind: ValueKind, choices: frozenset[str] | None, value: Any) -> None:
    expected = {
        ValueKind.text: (str,),
        ValueKind.text_list: (str,),
        ValueKind.boolean: (bool,),
        ValueKind.number: (int, float),
        ValueKind.any: (str, bool, int, float),
    }[kind]
    if not isinstance(value, expected) or (kind is ValueKind.number and isinstance(value, bool)):
        raise _invalid(f"expected {' or '.join(t.__name__ for t in expected)}, got {value!r}")
    if choices is not None and str(value).casefold() not in choices:
        raise _invalid(f"{value!r} is not one of {', '.join(sorted(choices))}")


def _check_pattern(pattern: str) -> None:
    if len(pattern) > MAX_PATTERN:
        raise _invalid(f"a regex is at most {MAX_PATTERN} characters")
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise _invalid(f"invalid regex: {exc}") from exc


class AllCondition(_Strict):
    """Holds when every condition holds (an empty list always holds)."""

    all: list[Condition]


class AnyCondition(_Strict):
    """Holds when at least one condition holds."""

    any: list[Condition] = Field(min_length=1)


class NotCondition(_Strict):
    """Holds when the condition does not."""

    not_: Condition = Field(alias="not")


def _condition_kind(data: Any) -> str | None:
    """Which kind of condition ``data`` is, by the key it has (``all``, ``any``, ``not`` or
    ``field``); a condition's kind is what it says, not a separate ``type`` key."""
    if isinstance(data, dict):
        return next((key for key in ("all", "any", "not", "field") if key in data), None)
    return _CONDITION_TAGS.get(type(data))


_CONDITION_TAGS: dict[type[BaseModel], str] = {
    AllCondition: "all",
    AnyCondition: "any",
    NotCondition: "not",
    FieldCondition: "field",
}

Condition = Annotated[
    Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")]
    | Annotated[FieldCondition, Tag("field")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message="a condition has one of the keys all, any, not or field",
    ),
]


def walk(
    condition: Condition, loc: tuple[str | int, ...] = (), depth: int = 1
) -> Iterator[tuple[tuple[str | int, ...], int, Condition]]:
    """Every condition in the tree with its location (as in error locs) and depth (1 at the
    top), parents before children."""
    yield loc, depth, condition
    if isinstance(condition, NotCondition):
        yield from walk(condition.not_, (*loc, "not"), depth + 1)
    elif isinstance(condition, AllCondition | AnyCondition):
        key = _CONDITION_TAGS[type(condition)]
        for index, child in enumerate(getattr(condition, key)):
            yield from walk(child, (*loc, key, index), depth + 1)


# --- Actions -----------------------------------------------------------------------------


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class AssignStrategy(StrEnum):
    skills = "skills"
    """The available agent whose skills best cover ``skills``."""
    least_loaded = "least_loaded"
    round_robin = "round_robin"


Name = Annotated[str, Field(min_length=1, max_length=100)]
Id = Annotated[int, Field(gt=0)]


class SetQueue(_Strict):
    type: Literal["set_queue"] = "set_queue"
    queue_id: Id


class SetPriority(_Strict):
    type: Literal["set_priority"] = "set_priority"
    priority: Priority


class RaisePriority(_Strict):
    """One step up (low, normal, high, urgent); an urgent ticket stays urgent."""

    type: Literal["raise_priority"] = "raise_priority"


class SetCategory(_Strict):
    type: Literal["set_category"] = "set_category"
    category: Name


class AddTags(_Strict):
    type: Literal["add_tags"] = "add_tags"
    tags: list[Name] = Field(min_length=1, max_length=50)


class RemoveTags(_Strict):
    type: Literal["remove_tags"] = "remove_tags"
    tags: list[Name] = Field(min_length=1, max_length=50)


class SetCustomField(_Strict):
    type: Literal["set_custom_field"] = "set_custom_field"
    name: Name
    value: Scalar | None = None
    """None clears the field."""


class Assign(_Strict):
    """To one agent, or by a strategy among a team's agents (the queue's when no team)."""

    type: Literal["assign"] = "assign"
    agent_id: Id | None = None
    team_id: Id | None = None
    strategy: AssignStrategy | None = None
    skills: dict[Name, Annotated[int, Field(ge=1, le=10)]] | None = None
    """Skill name -> the least level wanted; only with the skills strategy."""

    @model_validator(mode="after")
    def _one_target(self) -> Assign:
        if (self.agent_id is None) == (self.strategy is None):
            raise _invalid("assign takes exactly one of agent_id or strategy")
        if self.team_id is not None and self.strategy is None:
            raise _invalid("team_id is the pool of a strategy; it does not go with agent_id")
        if self.skills is not None and self.strategy is not AssignStrategy.skills:
            raise _invalid("skills go with strategy: skills")
        return self


class SetSlaPolicy(_Strict):
    type: Literal["set_sla_policy"] = "set_sla_policy"
    sla_policy_id: Id


class SendAutoReply(_Strict):
    type: Literal["send_auto_reply"] = "send_auto_reply"
    template_id: Id


class MarkSpam(_Strict):
    type: Literal["mark_spam"] = "mark_spam"


class Close(_Strict):
    type: Literal["close"] = "close"


class Notify(_Strict):
    """Tell subscribers (webhooks, watchers) that the rule saw something worth a look."""

    type: Literal["notify"] = "notify"
    event: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]
    note: Annotated[str, Field(max_length=1000)] | None = None


class NotifyRecipient(StrEnum):
    assignee = "assignee"
    """The agent the ticket is assigned to."""
    team = "team"
    """The active members of the ticket's team (its queue's team when it has none)."""
    supervisors = "supervisors"
    """The active supervisors among those members."""


class NotifyEmail(_Strict):
    """Mail agents (or a fixed address, such as a duty phone's) about the ticket: the
    template when given, else a short built-in text. Never the customer, and never part of the
    ticket's conversation."""

    type: Literal["notify_email"] = "notify_email"
    to: NotifyRecipient | None = None
    address: EmailAddress | None = None
    template_id: Id | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> NotifyEmail:
        if (self.to is None) == (self.address is None):
            raise _invalid("notify_email takes exactly one of to or address")
        return self


class Stop(_Strict):
    """End the evaluation after this rule, as ``stop: true`` on the rule does."""

    type: Literal["stop"] = "stop"


Action = Annotated[
    SetQueue
    | SetPriority
    | RaisePriority
    | SetCategory
    | AddTags
    | RemoveTags
    | SetCustomField
    | Assign
    | SetSlaPolicy
    | SendAutoReply
    | MarkSpam
    | Close
    | Notify
    | NotifyEmail
    | Stop,
    Field(discriminator="type"),
]


# --- Rules and rule sets -----------------------------------------------------------------


Clock = Annotated[str, Field(pattern=r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")]
"""HH:MM in the business-hours time zone; 24:00 is the end of the day."""


def clock_minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class BusinessHours(_Strict):
    timezone: str = "UTC"
    hours: dict[Weekday, tuple[Clock, Clock]]
    """Opening and closing time per weekday; a day left out is closed."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _invalid(f"unknown time zone {name!r}") from exc
        return name

    @field_validator("hours")
    @classmethod
    def _opens_before_closing(cls, hours: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        for day, (opens, closes) in hours.items():
            if clock_minutes(opens) >= clock_minutes(closes):
                raise _invalid(f"{day} closes ({closes}) before it opens ({opens})")
        return hours


Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class Rule(_Strict):
    id: Slug
    """Unique in the rule set and kept across versions, so traces can be compared."""
    name: Annotated[str, Field(min_length=1, max_length=200)]
    enabled: bool = True
    triggers: list[Trigger] = Field(default=[Trigger.ticket_created], min_length=1)
    when: Condition | None = None
    """None: the rule always matches."""
    actions: list[Action] = Field(min_length=1, max_length=50)
    stop: bool = False
    """Evaluate no further rules after this one matched."""

    @field_validator("when")
    @classmethod
    def _within_limits(cls, when: Condition | None) -> Condition | None:
        if when is None:
            return None
        nodes = list(walk(when))
        if len(nodes) > MAX_CONDITIONS:
            raise _invalid(f"a rule has at most {MAX_CONDITIONS} conditions")
        if max(depth for _, depth, _ in nodes) > MAX_DEPTH:
            raise _invalid(f"conditions nest at most {MAX_DEPTH} deep")
        return when


class RuleSetDefinition(_Strict):
    """A whole rule set as admins write it; rules are evaluated in this order."""

    business_hours: BusinessHours | None = None
    rules: list[Rule] = Field(default=[], max_length=MAX_RULES)


def definition_problems(
    definition: RuleSetDefinition,
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What is wrong across rules (a single rule cannot see it): duplicate ids, business-hours
    fields without business hours, fields the rule's triggers do not have."""
    seen: set[str] = set()
    for index, rule in enumerate(definition.rules):
        if rule.id in seen:
            yield ("rules", index, "id"), f"rule id {rule.id!r} is used twice"
        seen.add(rule.id)
        if rule.when is None:
            continue
        for loc, _, node in walk(rule.when, ("rules", index, "when")):
            if not isinstance(node, FieldCondition):
                continue
            if node.field == "time.business_hours" and definition.business_hours is None:
                yield (*loc, "field"), "time.business_hours needs business_hours in the rule set"
            problem = _trigger_problem(node.field, rule.triggers)
            if problem is not None:
                yield (*loc, "field"), problem


def _trigger_problem(path: str, triggers: list[Trigger]) -> str | None:
    spec = field_spec(path)
    if spec is None or spec.triggers is None:
        return None
    missing = [trigger.value for trigger in triggers if trigger not in spec.triggers]
    if not missing:
        return None
    known = ", ".join(sorted(spec.triggers))
    return f"{path} is not known on {', '.join(missing)}; only rules on {known} can use it"
