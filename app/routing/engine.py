"""Evaluating routing rules: a pure function of the compiled rules and the facts of one event.

``parse_rule_set`` validates what an admin wrote, ``compile_rule_set`` turns it into a tree of
small test objects once (regexes compiled, trigger words folded, needles casefolded), and
``evaluate`` runs the rules in order and returns the actions of those that matched with a trace
of every rule. Nothing here reads the database or the clock: simulating and replaying a
decision is calling ``evaluate`` again with the same facts.

Speed matters because every message runs every rule: each field's value is prepared (list
view, casefolded, folded, split into words) at most once per evaluation and shared by all
conditions on it; equal conditions in different rules are evaluated once; rules whose required
value (an address, a trigger word) is missing are skipped by an index (see "Guards"); and the
trace's sentences are only written when someone reads them.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import regex  # type: ignore[import-untyped]  # no stubs published
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.routing.facts import FIELDS, WEEKDAYS, Facts, ValueKind, field_spec
from app.routing.rules import (
    MEMBERSHIP_OPERATORS,
    ORDER_OPERATORS,
    Action,
    AllCondition,
    AnyCondition,
    Condition,
    FieldCondition,
    NotCondition,
    Operator,
    Rule,
    RuleSetDefinition,
    Stop,
    clock_minutes,
    definition_problems,
    is_number,
    parse_moment,
)
from app.routing.text import WordMatcher, fold, words

REGEX_TIMEOUT = 0.005
"""Seconds one regex may search one value; longer counts as not matched."""
_SHORT = 80
"""Characters of a value quoted in the trace."""


class ErrorDetail(TypedDict):
    loc: tuple[str | int, ...]
    msg: str


class RuleSetError(Exception):
    """The rule set is not valid; ``errors`` locate each problem, as a 422 response does."""

    def __init__(self, errors: list[ErrorDetail]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(
                f"{'.'.join(map(str, error['loc'])) or '<root>'}: {error['msg']}"
                for error in errors
            )
        )


# --- Parsing and the YAML form -------------------------------------------------------------


def parse_rule_set(data: Any) -> RuleSetDefinition:
    """Validate a rule set as loaded from JSON or YAML."""
    try:
        definition = RuleSetDefinition.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError([_error_detail(error) for error in exc.errors()]) from None
    _raise_problems(definition)
    return definition


def _raise_problems(definition: RuleSetDefinition) -> None:
    problems = [ErrorDetail(loc=loc, msg=msg) for loc, msg in definition_problems(definition)]
    if problems:
        raise RuleSetError(problems)


def _error_detail(error: ErrorDetails) -> ErrorDetail:
    loc = _rule_loc(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # Only actions are discriminated by a tag key; conditions report "condition_kind".
        return ErrorDetail(loc=(*loc, "type"), msg=_action_type_message(error))
    return ErrorDetail(loc=loc, msg=error["msg"])


def _action_type_message(error: ErrorDetails) -> str:
    context = error.get("ctx") or {}
    expected = str(context.get("expected_tags", "")).replace("'", "")
    if error["type"] == "union_tag_not_found":
        return f"an action needs a type: one of {expected}"
    return f"unknown action type {context.get('tag')!r}; expected one of {expected}"


def _rule_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The location as the admin wrote it: pydantic adds the chosen union member's tag after
    each place that holds a condition or an action (``when.all.all.0.field.op``), which
    the rule set's author never wrote."""
    kept: list[str | int] = []
    tag_next = False
    for index, part in enumerate(loc):
        if tag_next:
            tag_next = False
            continue
        kept.append(part)
        tag_next = part in ("when", "not") or (
            isinstance(part, int) and index > 0 and loc[index - 1] in ("all", "any", "actions")
        )
    return tuple(kept)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans and no base-60 numbers, so the language
    tag ``no`` (Norwegian) stays a string and ``16:00`` is not the number 960."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    """Short mappings and lists of plain values on one line (``{field: ..., op: ..., value:
    ...}``), as people write conditions and actions; everything else in block style."""


_SCALARS = str | int | float | bool


def _one_line(data: dict[str, Any] | list[Any]) -> bool:
    values = data.values() if isinstance(data, dict) else data
    plain = all(
        isinstance(value, _SCALARS)
        or (isinstance(value, list) and all(isinstance(item, _SCALARS) for item in value))
        for value in values
    )
    return plain and len(json.dumps(data, ensure_ascii=False)) <= _SHORT


_Dumper.add_representer(
    dict,
    lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data, flow_style=_one_line(data)
    ),
)
_Dumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=_one_line(data)
    ),
)


def definition_as_json(definition: RuleSetDefinition) -> dict[str, Any]:
    """The rule set as JSON-ready data, as saved and as admins write it (absent options left
    out)."""
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)


def definition_to_yaml(definition: RuleSetDefinition) -> str:
    return yaml.dump(
        definition_as_json(definition),
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=100,
    )


def definition_from_yaml(text: str) -> RuleSetDefinition:
    """Parse and validate the YAML form; a syntax error is a RuleSetError naming the line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader with other scalars
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RuleSetError([ErrorDetail(loc=(), msg=f"YAML: {where}{exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise RuleSetError([ErrorDetail(loc=(), msg=f"YAML: {exc}")]) from None
    return parse_rule_set({} if data is None else data)


# --- Values as the conditions see them -----------------------------------------------------


class _View:
    """One field's value prepared for comparison; each form is computed on first use."""

    __slots__ = ("_casefolded", "_folded", "_short", "_words", "is_list", "items", "present", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.is_list = isinstance(raw, list | tuple | set | frozenset)
        self.items: tuple[Any, ...] = () if raw is None else tuple(raw) if self.is_list else (raw,)
        self.present = any(item is not None and item != "" for item in self.items)
        self._casefolded: tuple[str | None, ...] | None = None
        self._folded: tuple[str, ...] | None = None
        self._words: frozenset[str] | None = None
        self._short: str | None = None

    def texts(self, case_sensitive: bool) -> tuple[str | None, ...]:
        """Each item as text to compare (None for items that are not strings)."""
        if case_sensitive:
            return tuple(item if isinstance(item, str) else None for item in self.items)
        if self._casefolded is None:
            self._casefolded = tuple(
                item.casefold() if isinstance(item, str) else None for item in self.items
            )
        return self._casefolded

    def folded(self) -> tuple[str, ...]:
        if self._folded is None:
            self._folded = tuple(fold(item) for item in self.items if isinstance(item, str))
        return self._folded

    def short(self) -> str:
        """The value as the trace quotes it."""
        if self._short is None:
            self._short = _short(self.raw)
        return self._short

    def words(self) -> frozenset[str]:
        if self._words is None:
            self._words = frozenset().union(*map(words, self.folded()))
        return self._words


class _Context:
    """One evaluation: the facts, the views made of them, and what the regexes found."""

    __slots__ = (
        "_clock",
        "_facts",
        "_rules",
        "explained",
        "outcomes",
        "results",
        "timed_out",
        "views",
    )

    def __init__(self, rules: CompiledRuleSet, facts: Facts) -> None:
        self._rules = rules
        self._facts = facts
        self._clock: dict[str, Any] | None = None
        self.views: dict[str, _View] = {}
        self.results: dict[_Leaf, bool] = {}
        """Each field condition's result: rules often share one (the VIP check, the opening
        hours), and the compiled rule set shares its test object."""
        self.outcomes: dict[_Regex, tuple[bool | None, str | None]] = {}
        """Each regex's result, so explaining a decision never searches again (a second
        search could time out differently)."""
        self.timed_out: set[_Regex] = set()
        self.explained: dict[_Leaf, tuple[bool, str]] = {}
        """Each field condition's explanation, shared like its result."""

    def view(self, path: str) -> _View:
        view = self.views.get(path)
        if view is None:
            view = self.views[path] = _View(
                self._time(path) if path in _CLOCK_FIELDS else self._facts.values.get(path)
            )
        return view

    def _time(self, path: str) -> Any:
        if self._clock is None:
            self._clock = self._rules.clock(self._facts.now)
        return self._clock[path]


_CLOCK_FIELDS = frozenset(path for path, spec in FIELDS.items() if spec.computed)


# --- Predicates: one field value against one condition --------------------------------------
#
# A predicate answers True (some item of the value matches), False (none does, or there is no
# value) or None (no item is of a type the condition can compare with). Negated operators
# (not_equals, not_in) hold on False only, so a value of the wrong type matches neither way.


class _Predicate(ABC):
    __slots__ = ()

    @abstractmethod
    def __call__(self, ctx: _Context, view: _View) -> bool | None: ...

    def evidence(self, ctx: _Context, view: _View) -> str | None:
        """What matched, for the trace (e.g. the trigger word found), if worth saying."""
        return None


def _verdict(comparable: bool, view: _View) -> bool | None:
    """No match: False when some item could be compared or there is no value, else None."""
    return False if comparable or not view.items else None


def _any_text(view: _View, case_sensitive: bool, test: Callable[[str], bool]) -> bool | None:
    comparable = False
    for text in view.texts(case_sensitive):
        if text is not None:
            if test(text):
                return True
            comparable = True
    return _verdict(comparable, view)


class _Members(_Predicate):
    """equals, not_equals, in, not_in, and contains on a list: an item is one of the values."""

    __slots__ = ("_bools", "_case_sensitive", "_numbers", "_strings")

    def __init__(self, values: Iterable[Any], case_sensitive: bool) -> None:
        values = list(values)
        self._case_sensitive = case_sensitive
        self._strings = frozenset(
            value if case_sensitive else value.casefold()
            for value in values
            if isinstance(value, str)
        )
        self._bools = frozenset(value for value in values if isinstance(value, bool))
        self._numbers = frozenset(value for value in values if is_number(value))

    def __call__(self, ctx: _Context, view: _View) -> bool | None:
        comparable = False
        if self._strings:
            found = _any_text(view, self._case_sensitive, self._strings.__contains__)
            if found:
                return True
            comparable = found is False
        for item in view.items if self._bools or self._numbers else ():
            if isinstance(item, bool):
                pool: frozenset[Any] = self._bools
            elif is_number(item):
                pool = self._numbers
            else:
                continue
            if pool:
                if item in pool:
                    return True
                comparable = True
        return _verdict(comparable, view)


class _Substring(_Predicate):
    """contains (on a text), starts_with, ends_with."""

    __slots__ = ("_case_sensitive", "_members", "_needle", "_test")

    def __init__(
        self, test: Callable[[str, str], bool], needle: str, case_sensitive: bool, op: Operator
    ) -> None:
        self._needle = needle if case_sensitive else needle.casefold()
        self._case_sensitive = case_sensitive
        self._test = test
        # On a free-form field holding a list, contains asks for an element too.
        self._members = _Members([needle], case_sensitive) if op is Operator.contains else None

    def __call__(self, ctx: _Context, view: _View) -> bool | None:
        if self._members is not None and view.is_list:
            return self._members(ctx, view)
        needle, test = self._needle, self._test
        return _any_text(view, self._case_sensitive, lambda text: test(text, needle))


class _Regex(_Predicate):
    __slots__ = ("_pattern",)

    def __init__(self, pattern: str, case_sensitive: bool) -> None:
        self._pattern = regex.compile(pattern, 0 if case_sensitive else regex.IGNORECASE)

    def __call__(self, ctx: _Context, view: _View) -> bool | None:
        return self._outcome(ctx, view)[0]

    def evidence(self, ctx: _Context, view: _View) -> str | None:
        return self._outcome(ctx, view)[1]

    def _outcome(self, ctx: _Context, view: _View) -> tuple[bool | None, str | None]:
        outcome = ctx.outcomes.get(self)
        if outcome is None:
            outcome = ctx.outcomes[self] = self._search(ctx, view)
        return outcome

    def _search(self, ctx: _Context, view: _View) -> tuple[bool | None, str | None]:
        comparable = False
        for item in view.items:
            if not isinstance(item, str):
                continue
            comparable = True
            try:
                found = self._pattern.search(item, timeout=REGEX_TIMEOUT)
            except TimeoutError:
                ctx.timed_out.add(self)
                return False, None
            if found is not None:
                return True, str(found.group())
        return _verdict(comparable, view), None


class _Words(_Predicate):
    __slots__ = ("_matcher",)

    def __init__(self, phrases: list[str]) -> None:
        self._matcher = WordMatcher(phrases)

    def __call__(self, ctx: _Context, view: _View) -> bool | None:
        return self.evidence(ctx, view) is not None or _verdict(bool(view.folded()), view)

    def evidence(self, ctx: _Context, view: _View) -> str | None:
        folded = view.folded()
        return self._matcher.find(folded, view.words()) if folded else None


class _Order(_Predicate):
    """gt, gte, lt, lte on numbers, or on dates and datetimes (ISO strings or objects)."""

    __slots__ = ("_compare", "_needle")

    def __init__(self, compare: Callable[[Any, Any], bool], value: Any) -> None:
        self._compare = compare
        moment = parse_moment(value)
        self._needle = value if is_number(value) else _same_kind_moment(moment, moment)

    def __call__(self, ctx: _Context, view: _View) -> bool | None:
        comparable = False
        for item in view.items:
            key = self._key(item)
            if key is not None:
                if self._compare(key, self._needle):
                    return True
                comparable = True
        return _verdict(comparable, view)

    def _key(self, item: Any) -> Any:
        if is_number(self._needle):
            return item if is_number(item) else None
        return _same_kind_moment(parse_moment(item), self._needle)


def _same_kind_moment(moment: Any, like: Any) -> Any:
    """``moment`` comparable with ``like``: a date compares by date, a datetime by instant
    (naive ones taken as UTC)."""
    if moment is None:
        return None
    if not isinstance(like, dt.datetime):
        return moment.date() if isinstance(moment, dt.datetime) else moment
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class _Exists(_Predicate):
    __slots__ = ("_wanted",)

    def __init__(self, wanted: bool) -> None:
        self._wanted = wanted

    def __call__(self, ctx: _Context, view: _View) -> bool | None:
        return view.present is self._wanted


# --- The condition tree --------------------------------------------------------------------


class _Node(ABC):
    """A compiled condition: ``test`` is the fast path, ``explain`` says why in words."""

    __slots__ = ()

    @abstractmethod
    def test(self, ctx: _Context) -> bool: ...

    @abstractmethod
    def explain(self, ctx: _Context) -> tuple[bool, str]: ...


class _All(_Node):
    __slots__ = ("_nodes",)

    def __init__(self, nodes: list[_Node]) -> None:
        self._nodes = nodes

    def test(self, ctx: _Context) -> bool:
        # Plain loops here and in _Any: this runs for every rule, and all()/any() would
        # build a generator per call.
        for node in self._nodes:  # noqa: SIM110
            if not node.test(ctx):
                return False
        return True

    def explain(self, ctx: _Context) -> tuple[bool, str]:
        reasons = []
        for node in self._nodes:
            held, why = node.explain(ctx)
            if not held:
                return False, why
            reasons.append(why)
        return True, " and ".join(reasons) or "no conditions"


class _Any(_Node):
    __slots__ = ("_nodes",)

    def __init__(self, nodes: list[_Node]) -> None:
        self._nodes = nodes

    def test(self, ctx: _Context) -> bool:
        for node in self._nodes:  # noqa: SIM110
            if node.test(ctx):
                return True
        return False

    def explain(self, ctx: _Context) -> tuple[bool, str]:
        misses = []
        for node in self._nodes:
            held, why = node.explain(ctx)
            if held:
                return True, why
            misses.append(why)
        return False, "none of: " + "; ".join(misses)


class _Not(_Node):
    __slots__ = ("_node",)

    def __init__(self, node: _Node) -> None:
        self._node = node

    def test(self, ctx: _Context) -> bool:
        return not self._node.test(ctx)

    def explain(self, ctx: _Context) -> tuple[bool, str]:
        held, why = self._node.explain(ctx)
        return (False, f"excluded because {why}") if held else (True, why)


_PHRASES: dict[Operator, tuple[str, str]] = {
    Operator.equals: ("equals", "does not equal"),
    Operator.not_equals: ("does not equal", "equals"),
    Operator.in_: ("is one of", "is not one of"),
    Operator.not_in: ("is not one of", "is one of"),
    Operator.contains: ("contains", "does not contain"),
    Operator.starts_with: ("starts with", "does not start with"),
    Operator.ends_with: ("ends with", "does not end with"),
    Operator.regex: ("matches", "does not match"),
    Operator.words: ("has the word", "has none of the words"),
    Operator.gt: ("is greater than", "is not greater than"),
    Operator.gte: ("is at least", "is less than"),
    Operator.lt: ("is less than", "is not less than"),
    Operator.lte: ("is at most", "is more than"),
}
"""How the trace says that a condition held, and that it did not (exists says what it saw)."""


class _Leaf(_Node):
    __slots__ = ("_condition", "_negated", "_path", "_predicate", "_value_text")

    def __init__(self, condition: FieldCondition) -> None:
        self._condition = condition
        self._path = condition.field
        self._predicate = _predicate(condition)
        self._negated = condition.op in (Operator.not_equals, Operator.not_in)
        self._value_text = _value_text(condition)

    def test(self, ctx: _Context) -> bool:
        held = ctx.results.get(self)
        if held is None:
            result = self._predicate(ctx, ctx.views.get(self._path) or ctx.view(self._path))
            held = ctx.results[self] = result is False if self._negated else result is True
        return held

    def explain(self, ctx: _Context) -> tuple[bool, str]:
        explained = ctx.explained.get(self)
        if explained is None:
            explained = ctx.explained[self] = self._explain(ctx)
        return explained

    def _explain(self, ctx: _Context) -> tuple[bool, str]:
        view = ctx.view(self._path)
        result = self._predicate(ctx, view)
        held = result is False if self._negated else result is True
        condition = self._condition
        if condition.op is Operator.exists:
            if view.present:
                return held, f"{self._path} is present ({view.short()})"
            return held, f"{self._path} is absent"
        says_held, says_missed = _PHRASES[condition.op]
        if held:
            evidence = self._predicate.evidence(ctx, view)
            shown = _quote(evidence) if evidence is not None else self._value_text
            if condition.op is Operator.regex:
                shown = f"{self._value_text} ({shown})"
            return True, f"{self._path} {says_held} {shown}"
        if not view.items:
            return False, f"{self._path} is absent"
        if self._predicate in ctx.timed_out:
            return False, (
                f"{self._path} {says_held} {self._value_text}: gave up after "
                f"{REGEX_TIMEOUT * 1000:g} ms, counted as not matched"
            )
        if result is None:
            return False, f"{self._path} is {view.short()}, not comparable with {condition.op}"
        return (
            False,
            f"{self._path} is {view.short()}, which {says_missed} {self._value_text}",
        )


def _value_text(condition: FieldCondition) -> str:
    """The condition's value as the trace quotes it."""
    if condition.op is Operator.regex:
        return f"/{condition.value}/"
    if isinstance(condition.value, list):
        return _clip(", ".join(_quote(item) for item in condition.value))
    return _quote(condition.value)


_quote = json.JSONEncoder(ensure_ascii=False).encode


def _clip(text: str) -> str:
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def _short(value: Any) -> str:
    """A value as the trace quotes it: JSON, at most about 80 characters."""
    if isinstance(value, str):
        return _clip(_quote(value[:_SHORT]))
    if isinstance(value, list | tuple | set | frozenset):
        return _clip("[" + ", ".join(_short(item) for item in list(value)[:10]) + "]")
    return _clip(_quote(value) if isinstance(value, bool | int | float) else str(value))


_COMPARISONS: dict[Operator, Callable[[Any, Any], bool]] = {
    Operator.gt: operator.gt,
    Operator.gte: operator.ge,
    Operator.lt: operator.lt,
    Operator.lte: operator.le,
}
_SUBSTRING_TESTS: dict[Operator, Callable[[str, str], bool]] = {
    Operator.contains: operator.contains,
    Operator.starts_with: str.startswith,
    Operator.ends_with: str.endswith,
}


def _is_list_field(path: str) -> bool:
    """A field that always holds a list, so ``contains`` asks for an element (equality) even
    when a single string stands in for the list."""
    spec = field_spec(path)
    return spec is not None and spec.kind is ValueKind.text_list


def _predicate(condition: FieldCondition) -> _Predicate:
    op, value, case_sensitive = condition.op, condition.value, condition.case_sensitive
    if op is Operator.contains and _is_list_field(condition.field):
        return _Members([value], case_sensitive)
    if op is Operator.exists:
        return _Exists(value)
    if op is Operator.words:
        return _Words([value] if isinstance(value, str) else value)
    if op is Operator.regex:
        return _Regex(value, case_sensitive)
    if op in ORDER_OPERATORS:
        return _Order(_COMPARISONS[op], value)
    if op in _SUBSTRING_TESTS:
        return _Substring(_SUBSTRING_TESTS[op], value, case_sensitive, op)
    return _Members(value if op in MEMBERSHIP_OPERATORS else [value], case_sensitive)


def _compile_condition(condition: Condition, leaves: dict[str, _Leaf]) -> _Node:
    """The condition's test tree; equal field conditions anywhere in the rule set share one
    test object (``leaves``, by their JSON form), so each is evaluated once per event."""
    if isinstance(condition, AllCondition):
        return _All([_compile_condition(child, leaves) for child in condition.all])
    if isinstance(condition, AnyCondition):
        return _Any([_compile_condition(child, leaves) for child in condition.any])
    if isinstance(condition, NotCondition):
        return _Not(_compile_condition(condition.not_, leaves))
    key = _quote(condition.model_dump(mode="json"))
    leaf = leaves.get(key)
    if leaf is None:
        leaf = leaves[key] = _Leaf(condition)
    return leaf


# --- Guards: skipping rules that cannot match -----------------------------------------------
#
# Most rules fail on a value they require: a recipient address, a sender domain, a trigger
# word. A guard is such a necessary condition, as a set of tokens at least one of which the
# facts must have: ``(path, False, casefolded value)`` for equals/in on strings, ``(path, True,
# word)`` for trigger words (a phrase needs all its words, so its first word will do). The rule
# set indexes every rule by its guard's tokens, and one look at the facts' values tells which
# rules can still match; the others are known misses without running their conditions (their
# trace is still written by the full conditions, so it says the same as if they had run).

_Token = tuple[str, bool, str]


def _guard(condition: Condition) -> frozenset[_Token] | None:
    if isinstance(condition, FieldCondition):
        return _leaf_guard(condition)
    if isinstance(condition, AllCondition):
        return next((g for child in condition.all if (g := _guard(child)) is not None), None)
    if isinstance(condition, AnyCondition):
        guards = [_guard(child) for child in condition.any]
        return frozenset().union(*guards) if None not in guards else None  # type: ignore[arg-type]
    return None


def _leaf_guard(condition: FieldCondition) -> frozenset[_Token] | None:
    path, op, value = condition.field, condition.op, condition.value
    if op is Operator.words:
        phrases = [value] if isinstance(value, str) else value
        return frozenset((path, True, words(fold(phrase))[0]) for phrase in phrases)
    element = op is Operator.contains and _is_list_field(path)
    values = [value] if op is Operator.equals or element else value if op is Operator.in_ else None
    if values is None or not all(isinstance(item, str) for item in values):
        return None
    # Case-sensitive equality implies casefolded equality, so the casefolded token is needed
    # either way.
    return frozenset((path, False, item.casefold()) for item in values)


# --- Rules, decisions and traces -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    position: int
    when: _Node | None
    runs_on: frozenset[str]
    """The triggers it runs on; none when disabled."""
    guarded: bool
    effects: tuple[Action, ...]
    """The actions the service applies: all but ``stop``, which is the engine's."""
    stops: bool
    actions_json: str
    """The actions as JSON text: decoding it is the fastest way to hand out a fresh copy."""

    @classmethod
    def of(cls, rule: Rule, position: int, leaves: dict[str, _Leaf]) -> _CompiledRule:
        return cls(
            rule=rule,
            position=position,
            when=None if rule.when is None else _compile_condition(rule.when, leaves),
            runs_on=frozenset(rule.triggers) if rule.enabled else frozenset(),
            guarded=rule.when is not None and _guard(rule.when) is not None,
            effects=tuple(action for action in rule.actions if not isinstance(action, Stop)),
            stops=rule.stop or any(isinstance(action, Stop) for action in rule.actions),
            actions_json=_quote(
                [action.model_dump(mode="json", exclude_none=True) for action in rule.actions]
            ),
        )


@dataclass(frozen=True, slots=True)
class CompiledRuleSet:
    """A rule set ready to evaluate; build it once per saved version and share it."""

    definition: RuleSetDefinition
    _rules: tuple[_CompiledRule, ...]
    _index: Mapping[tuple[str, bool], Mapping[str, frozenset[int]]]
    """(path, is a word) -> token -> the positions of the rules it lets through."""
    _zone: dt.tzinfo
    _opening: Mapping[str, tuple[int, int]]
    """Weekday -> opening and closing minute of the day."""

    def clock(self, now: dt.datetime) -> dict[str, Any]:
        """The ``time.*`` fields at ``now``."""
        local = now.astimezone(self._zone)
        weekday = WEEKDAYS[local.weekday()]
        minute = local.hour * 60 + local.minute
        opens, closes = self._opening.get(weekday, (0, 0))
        return {
            "time.weekday": weekday,
            "time.hour": local.hour,
            "time.business_hours": opens <= minute < closes,
        }

    def _candidates(self, ctx: _Context) -> set[int]:
        """The positions of the guarded rules whose guard the facts satisfy."""
        candidates: set[int] = set()
        for (path, is_word), rules_by_token in self._index.items():
            view = ctx.view(path)
            present = view.words() if is_word else view.texts(False)
            for token in present:
                hit = rules_by_token.get(token)  # type: ignore[arg-type]
                if hit is not None:
                    candidates.update(hit)
        return candidates


def compile_rule_set(definition: RuleSetDefinition) -> CompiledRuleSet:
    """Prepare a validated rule set for evaluation."""
    _raise_problems(definition)
    hours = definition.business_hours
    index: dict[tuple[str, bool], dict[str, set[int]]] = {}
    leaves: dict[str, _Leaf] = {}
    for position, rule in enumerate(definition.rules):
        for path, is_word, token in (_guard(rule.when) if rule.when else None) or ():
            index.setdefault((path, is_word), {}).setdefault(token, set()).add(position)
    return CompiledRuleSet(
        definition=definition,
        _rules=tuple(
            _CompiledRule.of(rule, position, leaves)
            for position, rule in enumerate(definition.rules)
        ),
        _index={
            key: {token: frozenset(positions) for token, positions in tokens.items()}
            for key, tokens in index.items()
        },
        _zone=ZoneInfo(hours.timezone) if hours else dt.UTC,
        _opening={
            day: (clock_minutes(opens), clock_minutes(closes))
            for day, (opens, closes) in (hours.hours.items() if hours else ())
        },
    )


class RuleTrace:
    """What one rule made of the facts. ``matched`` is None when the rule did not run
    (disabled, or not for this trigger); ``why`` is written on first read."""

    __slots__ = ("_compiled", "_ctx", "_why", "matched", "timed_out")

    def __init__(
        self, compiled: _CompiledRule, matched: bool | None, timed_out: bool, ctx: _Context
    ) -> None:
        self._compiled = compiled
        self._ctx = ctx
        self._why: str | None = None
        self.matched = matched
        self.timed_out = timed_out
        """A regex of the rule gave up (and counted as not matched)."""

    @property
    def rule_id(self) -> str:
        return self._compiled.rule.id

    @property
    def name(self) -> str:
        return self._compiled.rule.name

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The rule's actions as data when it matched, else none."""
        return json.loads(self._compiled.actions_json) if self.matched else []

    @property
    def why(self) -> str:
        if self._why is None:
            self._why = self._explain()
        return self._why

    def _explain(self) -> str:
        rule = self._compiled.rule
        if not rule.enabled:
            return "disabled"
        if self.matched is None:
            return "runs only on " + ", ".join(rule.triggers)
        if self._compiled.when is None:
            return "no conditions: always matches"
        return self._compiled.when.explain(self._ctx)[1]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "name": self.name,
            "matched": self.matched,
            "why": self.why,
            "timed_out": self.timed_out,
            "actions": self.actions,
        }


class Decision:
    """The actions to apply and why. The per-rule trace is made on first read, so deciding
    stays cheap when only the actions are wanted."""

    __slots__ = ("_ctx", "_outcomes", "_trace", "actions", "stopped_by")

    def __init__(
        self,
        actions: list[Action],
        outcomes: list[tuple[_CompiledRule, bool | None, bool]],
        ctx: _Context,
        stopped_by: str | None,
    ) -> None:
        self.actions = actions
        """What to do, in rule order; a later action of a kind overrides an earlier one."""
        self.stopped_by = stopped_by
        """The rule whose ``stop`` ended the evaluation."""
        self._outcomes = outcomes
        self._ctx = ctx
        self._trace: list[RuleTrace] | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    @property
    def owners(self) -> list[str]:
        """The id of the rule each action came from, in the order of ``actions``."""
        return [
            compiled.rule.id
            for compiled, matched, _ in self._outcomes
            if matched
            for _ in compiled.effects
        ]

    @property
    def verdicts(self) -> dict[str, bool]:
        """Whether each rule that ran matched, by rule id (rules that did not run are left
        out: disabled, for other triggers, or after the rule that stopped the evaluation)."""
        return {
            compiled.rule.id: matched
            for compiled, matched, _ in self._outcomes
            if matched is not None
        }

    @property
    def trace(self) -> list[RuleTrace]:
        """Every rule up to the one that stopped the evaluation (if any), in order."""
        if self._trace is None:
            self._trace = [
                RuleTrace(compiled, matched, timed_out, self._ctx)
                for compiled, matched, timed_out in self._outcomes
            ]
        return self._trace

    def as_json(self) -> dict[str, Any]:
        return {
            "actions": [
                action.model_dump(mode="json", exclude_none=True) for action in self.actions
            ],
            "rules": [rule.as_json() for rule in self.trace],
            "stopped_by": self.stopped_by,
        }


def evaluate(rules: CompiledRuleSet, facts: Facts) -> Decision:
    """Run the rules in order on the facts; pure, and the same facts give the same decision."""
    ctx = _Context(rules, facts)
    candidates = rules._candidates(ctx)
    trigger = facts.trigger
    timed_out = ctx.timed_out
    actions: list[Action] = []
    outcomes: list[tuple[_CompiledRule, bool | None, bool]] = []
    for compiled in rules._rules:
        if trigger not in compiled.runs_on:
            outcomes.append((compiled, None, False))
            continue
        if compiled.guarded and compiled.position not in candidates:
            outcomes.append((compiled, False, False))
            continue
        when = compiled.when
        timeouts = len(timed_out)
        matched = when is None or when.test(ctx)
        outcomes.append((compiled, matched, len(timed_out) > timeouts))
        if matched:
            actions.extend(compiled.effects)
            if compiled.stops:
                return Decision(actions, outcomes, ctx, compiled.rule.id)
    return Decision(actions, outcomes, ctx, None)
