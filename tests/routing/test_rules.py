"""The rule language: what is refused (and where the error points), and the YAML form."""

from __future__ import annotations

from typing import Any

import pytest

from app.routing.engine import (
    RuleSetError,
    definition_from_yaml,
    definition_to_yaml,
    parse_rule_set,
)
from app.routing.rules import Assign, AssignStrategy, FieldCondition, RuleSetDefinition, SetQueue

EXAMPLE = """\
business_hours:
  timezone: Europe/Copenhagen
  hours: {mon: ['08:00', '16:00'], fri: ['08:00', '15:00']}
rules:
- id: faktura
  name: Fakturaer til bogholderiet – æøå ÆØÅ äö
  enabled: true
  triggers: [ticket_created, message_received]
  when:
    all:
    - {field: message.recipients, op: equals, value: faktura@firma.dk}
    - any:
      - field: message.subject
        op: words
        value: [faktura, regning, räkning, lasku]
      - not: {field: customer.attributes.segment, op: in, value: [b2b]}
      - field: message.subject
        op: regex
        value: ordre\\s*\\d+
        case_sensitive: true
  actions:
  - {type: set_queue, queue_id: 3}
  - {type: set_priority, priority: high}
  - {type: add_tags, tags: [faktura, økonomi]}
  - type: assign
    team_id: 2
    strategy: skills
    skills: {dansk: 3}
  stop: true
- id: norsk
  name: Norsk kundeservice
  enabled: false
  triggers: [ticket_created]
  when: {field: language, op: equals, value: 'no'}
  actions:
  - {type: notify, event: norwegian.customer, note: Søknad om hjælp}
  - {type: stop}
  stop: false
"""


def rule(when: Any = None, actions: Any = None, **extra: Any) -> dict[str, Any]:
    data = {"id": "r", "name": "R", "actions": actions or [{"type": "close"}], **extra}
    if when is not None:
        data["when"] = when
    return data


def errors(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(RuleSetError) as caught:
        parse_rule_set(data)
    return [(".".join(map(str, error["loc"])), error["msg"]) for error in caught.value.errors]


def only_error(data: Any) -> tuple[str, str]:
    [error] = errors(data)
    return error


def test_yaml_round_trip_keeps_everything_and_nordic_letters_readable() -> None:
    definition = definition_from_yaml(EXAMPLE)
    text = definition_to_yaml(definition)
    assert text == EXAMPLE
    assert "æøå ÆØÅ äö" in text
    assert "\\u" not in text
    assert definition_from_yaml(text) == definition


def test_yaml_reads_clock_times_and_the_norwegian_language_tag_as_written() -> None:
    definition = definition_from_yaml(
        "business_hours: {hours: {mon: [08:00, 16:00]}}\n"
        "rules:\n"
        "- id: n\n  name: N\n  when: {field: language, op: equals, value: no}\n"
        "  actions: [{type: close}]\n"
    )
    assert definition.business_hours is not None
    assert definition.business_hours.hours["mon"] == ("08:00", "16:00")
    condition = definition.rules[0].when
    assert isinstance(condition, FieldCondition)
    assert condition.value == "no"


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(RuleSetError) as caught:
        definition_from_yaml("rules:\n- id: a\n  name: [unclosed\n")
    [error] = caught.value.errors
    assert error["loc"] == ()
    assert "line 4" in error["msg"]


def test_an_empty_document_is_an_empty_rule_set() -> None:
    assert definition_from_yaml("") == RuleSetDefinition()


def test_models_can_be_built_in_code() -> None:
    assert SetQueue(queue_id=3).type == "set_queue"
    assert Assign(strategy=AssignStrategy.round_robin, team_id=4).agent_id is None


@pytest.mark.parametrize(
    ("when", "loc", "message"),
    [
        (
            {
                "all": [
                    {"field": "message.subject", "op": "words", "value": "x"},
                    {"field": "message.colour", "op": "equals", "value": "x"},
                ]
            },
            "rules.0.when.all.1.field",
            "unknown field 'message.colour'",
        ),
        (
            {"field": "customer.atributes.segment", "op": "equals", "value": "b2b"},
            "rules.0.when.field",
            "unknown field",
        ),
        (
            {"not": {"field": "customer.open_tickets", "op": "words", "value": ["x"]}},
            "rules.0.when.not.op",
            "words does not apply to a number field",
        ),
        (
            {"field": "message.subject", "op": "gt", "value": 3},
            "rules.0.when.op",
            "gt does not apply to a text field",
        ),
        (
            {"field": "customer.open_tickets", "op": "gt", "value": "many"},
            "rules.0.when.value",
            "gt on a number field takes a number",
        ),
        (
            {"field": "customer.vip", "op": "equals", "value": "yes"},
            "rules.0.when.value",
            "expected bool",
        ),
        (
            {"any": [{"field": "message.subject", "op": "regex", "value": "(unclosed"}]},
            "rules.0.when.any.0.value",
            "invalid regex",
        ),
        (
            {"field": "message.channel", "op": "in", "value": ["email", "fax"]},
            "rules.0.when.value",
            "'fax' is not one of api, email, phone, web",
        ),
        (
            {"field": "message.subject", "op": "words", "value": ["--"]},
            "rules.0.when.value",
            "needs at least one letter or digit",
        ),
        (
            {"field": "message.subject", "op": "words", "value": "x", "case_sensitive": True},
            "rules.0.when.case_sensitive",
            "words always ignore case",
        ),
        (
            {"field": "message.subject", "op": "exists", "value": "yes"},
            "rules.0.when.value",
            "exists takes true or false",
        ),
        (
            {"field": "message.subject", "op": "in", "value": []},
            "rules.0.when.value",
            "in takes a list",
        ),
        (
            {"field": "ticket.custom_fields.due", "op": "lt", "value": "next week"},
            "rules.0.when.value",
            "ISO date",
        ),
        ({"some": []}, "rules.0.when", "a condition has one of the keys"),
        (
            {"field": "message.subject", "op": "equals", "value": "x", "colour": 1},
            "rules.0.when.colour",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_condition_errors_point_at_the_faulty_part(
    when: dict[str, Any], loc: str, message: str
) -> None:
    where, what = only_error({"rules": [rule(when)]})
    assert (where, message in what) == (loc, True), what


@pytest.mark.parametrize(
    ("action", "loc", "message"),
    [
        ({"type": "teleport"}, "rules.0.actions.0.type", "unknown action type 'teleport'"),
        ({"queue_id": 3}, "rules.0.actions.0.type", "an action needs a type"),
        ({"type": "set_queue", "queue_id": "x"}, "rules.0.actions.0.queue_id", "valid integer"),
        ({"type": "set_priority", "priority": "asap"}, "rules.0.actions.0.priority", "low"),
        (
            {"type": "assign", "agent_id": 1, "strategy": "skills"},
            "rules.0.actions.0",
            "exactly one of agent_id or strategy",
        ),
        ({"type": "assign"}, "rules.0.actions.0", "exactly one of agent_id or strategy"),
        (
            {"type": "assign", "agent_id": 1, "team_id": 2},
            "rules.0.actions.0",
            "team_id is the pool of a strategy",
        ),
        (
            {"type": "assign", "strategy": "round_robin", "skills": {"dansk": 2}},
            "rules.0.actions.0",
            "skills go with strategy: skills",
        ),
        ({"type": "close", "why": "x"}, "rules.0.actions.0.why", "Extra inputs"),
    ],
)
def test_action_errors_point_at_the_faulty_part(
    action: dict[str, Any], loc: str, message: str
) -> None:
    where, what = only_error({"rules": [rule(actions=[action])]})
    assert (where, message in what) == (loc, True), what


def test_duplicate_rule_ids_point_at_the_second() -> None:
    assert errors({"rules": [rule(), rule(name="other"), rule(id="s")]}) == [
        ("rules.1.id", "rule id 'r' is used twice")
    ]


def test_business_hours_conditions_need_business_hours() -> None:
    when = {"not": {"field": "time.business_hours", "op": "equals", "value": True}}
    assert only_error({"rules": [rule(when)]}) == (
        "rules.0.when.not.field",
        "time.business_hours needs business_hours in the rule set",
    )


@pytest.mark.parametrize(
    ("business_hours", "loc"),
    [
        ({"timezone": "Europe/Kobenhavn", "hours": {}}, "business_hours.timezone"),
        ({"hours": {"mon": ["16:00", "08:00"]}}, "business_hours.hours"),
        ({"hours": {"mon": ["8", "16:00"]}}, "business_hours.hours.mon.0"),
        ({"hours": {"someday": ["08:00", "16:00"]}}, "business_hours.hours.someday.[key]"),
    ],
)
def test_business_hours_errors(business_hours: dict[str, Any], loc: str) -> None:
    assert only_error({"business_hours": business_hours})[0] == loc


def test_limits_on_depth_and_size() -> None:
    deep: dict[str, Any] = {"field": "message.subject", "op": "exists", "value": True}
    for _ in range(10):
        deep = {"not": deep}
    assert only_error({"rules": [rule(deep)]}) == (
        "rules.0.when",
        "conditions nest at most 10 deep",
    )
    wide = {"any": [{"field": "language", "op": "equals", "value": "da"}] * 200}
    assert "at most 200 conditions" in only_error({"rules": [rule(wide)]})[1]
    many = [rule(id=f"r{index}") for index in range(1001)]
    assert only_error({"rules": many})[0] == "rules"


def test_rule_ids_are_slugs_and_rules_need_actions() -> None:
    assert only_error({"rules": [rule(id="Faktura Regel")]})[0] == "rules.0.id"
    assert only_error({"rules": [{"id": "a", "name": "A", "actions": []}]})[0] == "rules.0.actions"
    assert only_error({"rules": [rule(triggers=["ticket_deleted"])]})[0] == "rules.0.triggers.0"
