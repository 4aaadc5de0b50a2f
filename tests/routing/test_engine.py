"""Evaluating rules: every operator on every kind of field, groups, stop, triggers, opening hours
across daylight-saving changes, regexes that run too long, and what the trace says."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.routing.engine import Decision, RuleTrace, compile_rule_set, evaluate, parse_rule_set
from app.routing.facts import Facts, Trigger
from app.routing.rules import AddTags, Close, SetQueue

MONDAY_NOON = datetime(2025, 3, 24, 11, 0, tzinfo=UTC)
OPEN_WEEKDAYS = {day: ["08:00", "16:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def decide(
    rules: list[dict[str, Any]],
    values: dict[str, Any] | None = None,
    *,
    trigger: Trigger = Trigger.ticket_created,
    now: datetime = MONDAY_NOON,
    business_hours: dict[str, Any] | None = None,
) -> Decision:
    data: dict[str, Any] = {"rules": rules}
    if business_hours is not None:
        data["business_hours"] = business_hours
    compiled = compile_rule_set(parse_rule_set(data))
    return evaluate(compiled, Facts(trigger=trigger, now=now, values=values or {}))


def rule(when: Any = None, rule_id: str = "r", **extra: Any) -> dict[str, Any]:
    data = {"id": rule_id, "name": rule_id.title(), "actions": [{"type": "close"}], **extra}
    if when is not None:
        data["when"] = when
    return data


def trace(when: dict[str, Any], values: dict[str, Any], **options: Any) -> RuleTrace:
    [only] = decide([rule(when)], values, **options).trace
    return only


def holds(field: str, op: str, value: Any, actual: Any, **condition: Any) -> bool:
    when = {"field": field, "op": op, "value": value, **condition}
    matched = trace(when, {} if actual is None else {field: actual}).matched
    assert matched is not None
    return matched


# --- Operators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "value", "actual", "expected"),
    [
        # text
        ("message.subject", "equals", "Faktura", "FAKTURA", True),
        ("message.subject", "equals", "Faktura", "Fakturaer", False),
        ("message.subject", "not_equals", "Faktura", "faktura", False),
        ("message.subject", "not_equals", "Faktura", "Regning", True),
        ("message.subject", "not_equals", "Faktura", None, True),
        ("message.subject", "in", ["a", "Ærgerlig"], "ÆRGERLIG", True),
        ("message.subject", "not_in", ["a", "b"], "c", True),
        ("message.subject", "not_in", ["a", "b"], "B", False),
        ("message.subject", "contains", "räkning", "Min RÄKNING nr 4", True),
        ("message.subject", "contains", "räkning", "Min rakning nr 4", False),
        ("message.subject", "starts_with", "sv:", "SV: Hej", True),
        ("message.subject", "starts_with", "sv:", "Hej SV:", False),
        ("message.subject", "ends_with", "på forhånd tak", "Hjælp, PÅ FORHÅND TAK", True),
        ("message.subject", "regex", r"ordre\s*\d{5}", "Ordre 12345", True),
        ("message.subject", "regex", r"ordre\s*\d{5}", "Ordre 1234", False),
        ("message.subject", "words", ["lasku"], "Lasku 3/2025", True),
        ("message.subject", "exists", True, "x", True),
        ("message.subject", "exists", True, "", False),
        ("message.subject", "exists", False, None, True),
        ("message.subject", "equals", "x", None, False),
        ("message.subject", "contains", "x", None, False),
        # text list: any element
        ("message.recipients", "equals", "faktura@firma.dk", ["a@x.dk", "Faktura@Firma.dk"], True),
        ("message.recipients", "equals", "faktura@firma.dk", ["a@x.dk"], False),
        ("message.recipients", "not_equals", "faktura@firma.dk", ["faktura@firma.dk"], False),
        ("message.recipients", "not_equals", "faktura@firma.dk", ["b@firma.dk"], True),
        ("message.recipients", "in", ["x@firma.dk", "y@firma.dk"], ["a@b.dk", "y@firma.dk"], True),
        ("message.recipients", "not_in", ["x@firma.dk"], ["a@b.dk", "x@firma.dk"], False),
        ("ticket.tags", "contains", "vip", ["VIP", "faktura"], True),
        ("ticket.tags", "contains", "vip", ["vipper"], False),
        (
            "message.attachment_types",
            "starts_with",
            "image/",
            ["application/pdf", "image/png"],
            True,
        ),
        ("message.attachment_names", "ends_with", ".pdf", ["faktura.PDF"], True),
        ("message.attachment_names", "regex", r"^faktura", ["bilag.pdf", "Faktura_7.pdf"], True),
        ("message.attachment_names", "words", ["kvitto"], ["kvitto-2025.pdf"], True),
        ("ticket.tags", "exists", True, [], False),
        ("ticket.tags", "exists", True, ["a"], True),
        # boolean
        ("customer.vip", "equals", True, True, True),
        ("customer.vip", "equals", True, False, False),
        ("customer.vip", "not_equals", True, False, True),
        ("customer.vip", "equals", False, None, False),
        ("message.has_attachments", "equals", True, 1, False),
        # number
        ("customer.open_tickets", "gt", 2, 3, True),
        ("customer.open_tickets", "gt", 3, 3, False),
        ("customer.open_tickets", "gte", 3, 3, True),
        ("customer.open_tickets", "lt", 3, 2.5, True),
        ("customer.open_tickets", "lte", 3, 4, False),
        ("customer.open_tickets", "equals", 3, 3.0, True),
        ("customer.open_tickets", "in", [1, 2], 2, True),
        ("customer.open_tickets", "not_in", [1, 2], 5, True),
        ("customer.open_tickets", "gt", 2, None, False),
        ("customer.open_tickets", "gt", 2, "3", False),
        ("customer.open_tickets", "equals", 1, True, False),
        # free-form: dates, mixed types
        ("ticket.custom_fields.due", "lt", "2025-04-01", "2025-03-31", True),
        ("ticket.custom_fields.due", "lt", "2025-04-01", "2025-04-01T10:00:00+02:00", False),
        (
            "ticket.custom_fields.due",
            "gte",
            "2025-04-01T08:00:00Z",
            "2025-04-01T10:00:00+02:00",
            True,
        ),
        ("ticket.custom_fields.due", "gt", "2025-04-01T08:00:00Z", "2025-04-01T09:00:00", True),
        ("ticket.custom_fields.due", "gt", "2025-04-01", "next week", False),
        ("customer.attributes.size", "gt", 50, 120, True),
        ("customer.attributes.segment", "in", ["b2b", 7], 7, True),
        ("customer.attributes.segment", "in", ["b2b", 7], "B2B", True),
        ("customer.attributes.segment", "equals", "7", 7, False),
        ("customer.attributes.segment", "not_equals", "7", 7, False),
        ("customer.attributes.tags", "contains", "gold", ["gold", "eu"], True),
        ("customer.attributes.note", "contains", "gold", "a golden customer", True),
        ("form.product", "equals", "Cykel", "cykel", True),
    ],
)
def test_operators(field: str, op: str, value: Any, actual: Any, expected: bool) -> None:
    assert holds(field, op, value, actual) is expected


def test_case_sensitive_comparisons() -> None:
    assert not holds("message.subject", "equals", "SV", "sv", case_sensitive=True)
    assert holds("message.subject", "equals", "SV", "SV", case_sensitive=True)
    assert not holds("message.subject", "regex", "^SV", "sv: hej", case_sensitive=True)
    assert holds("message.subject", "regex", "^SV", "sv: hej")
    assert not holds("ticket.tags", "contains", "VIP", ["vip"], case_sensitive=True)


@pytest.mark.parametrize(
    ("words", "subject", "expected"),
    [
        (["faktura"], "FAKTURA, tack", True),
        (["faktura"], "fakturaen er forkert", False),
        (["räkning"], "Rakning saknas", True),
        (["rakning"], "Räkningen saknas", False),
        (["ærgerlig"], "Aergerlig fejl", True),
        (["søknad"], "Min SOKNAD", True),
        (["lasku"], "Lasku: eräpäivä", True),
        (["påminnelse"], "Påminnelse!", True),
        (["invoice"], "Re: your invoice.", True),
        (["ikke virker"], "Printeren ikke virker", True),
    ],
)
def test_words_in_the_nordic_languages(words: list[str], subject: str, expected: bool) -> None:
    assert holds("message.subject", "words", words, subject) is expected


def test_words_look_at_subject_and_body_separately() -> None:
    values = {"message.subject": "Hej", "message.body": "Min faktura er forkert"}
    assert trace({"field": "message.body", "op": "words", "value": "faktura"}, values).matched
    assert not trace(
        {"field": "message.subject", "op": "words", "value": "faktura"}, values
    ).matched


_CONDITIONS_WITH_A_REQUIRED_VALUE = [
    {"field": "message.subject", "op": "words", "value": ["a", "æb", "ø c"]},
    {"field": "message.subject", "op": "equals", "value": "Æb"},
    {"field": "message.subject", "op": "in", "value": ["a", "ÅÄ"], "case_sensitive": True},
    {"field": "message.recipients", "op": "equals", "value": "a"},
    {"field": "message.recipients", "op": "contains", "value": "æb"},
]


@given(
    subject=st.text(alphabet="abcæøåäöÆÅÄ ,.", max_size=30),
    recipients=st.one_of(
        st.text(alphabet="abæ", max_size=3), st.lists(st.text(alphabet="abæÆ", max_size=3))
    ),
    required=st.sampled_from(_CONDITIONS_WITH_A_REQUIRED_VALUE),
)
def test_skipping_rules_by_a_required_value_changes_no_decision(
    subject: str, recipients: str | list[str], required: dict[str, Any]
) -> None:
    # The not-not form says the same but gives the engine nothing to skip rules by.
    decision = decide(
        [rule(required, "plain"), rule({"not": {"not": required}}, "wrapped")],
        {"message.subject": subject, "message.recipients": recipients},
    )
    assert decision.trace[0].matched is decision.trace[1].matched


def test_a_single_string_stands_in_for_a_list() -> None:
    assert holds("ticket.tags", "contains", "vip", "VIP")
    assert not holds("ticket.tags", "contains", "vip", "vipper")
    assert holds("message.recipients", "equals", "a@firma.dk", "A@firma.dk")


# --- Groups, stop, triggers -----------------------------------------------------------------

SUBJECT_FAKTURA = {"field": "message.subject", "op": "words", "value": ["faktura"]}
VIP = {"field": "customer.vip", "op": "equals", "value": True}
B2B = {"field": "customer.segment", "op": "equals", "value": "b2b"}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"all": [SUBJECT_FAKTURA, VIP]}, False),
        ({"all": [SUBJECT_FAKTURA, B2B]}, True),
        ({"all": []}, True),
        ({"any": [VIP, B2B]}, True),
        ({"any": [VIP, {"not": B2B}]}, False),
        ({"not": VIP}, True),
        ({"not": {"not": VIP}}, False),
        ({"all": [SUBJECT_FAKTURA, {"any": [VIP, {"all": [B2B, {"not": VIP}]}]}]}, True),
    ],
)
def test_groups(when: dict[str, Any], expected: bool) -> None:
    values = {"message.subject": "Faktura", "customer.vip": False, "customer.segment": "b2b"}
    assert trace(when, values).matched is expected


def test_actions_come_in_rule_order_and_stop_ends_the_evaluation() -> None:
    decision = decide(
        [
            rule(actions=[{"type": "add_tags", "tags": ["a"]}], rule_id="first"),
            rule(VIP, actions=[{"type": "set_queue", "queue_id": 9}], rule_id="miss"),
            rule(actions=[{"type": "set_queue", "queue_id": 3}, {"type": "stop"}], rule_id="stops"),
            rule(rule_id="after"),
        ],
        {"customer.vip": False},
    )
    assert decision.actions == [AddTags(tags=["a"]), SetQueue(queue_id=3)]
    assert [(t.rule_id, t.matched) for t in decision.trace] == [
        ("first", True),
        ("miss", False),
        ("stops", True),
    ]
    assert decision.stopped
    assert decision.stopped_by == "stops"
    assert decision.trace[2].actions == [{"type": "set_queue", "queue_id": 3}, {"type": "stop"}]


def test_stop_on_the_rule_and_no_stop_when_it_does_not_match() -> None:
    decision = decide(
        [rule(VIP, "vip", stop=True), rule(rule_id="always", stop=True), rule(rule_id="never")],
        {"customer.vip": False},
    )
    assert decision.actions == [Close()]
    assert decision.stopped_by == "always"
    assert len(decision.trace) == 2


def test_disabled_rules_and_other_triggers_are_skipped() -> None:
    decision = decide(
        [
            rule(rule_id="off", enabled=False),
            rule(rule_id="updates", triggers=["ticket_updated"]),
            rule(rule_id="replies", triggers=["message_received", "ticket_updated"]),
        ],
        trigger=Trigger.message_received,
    )
    assert [(t.rule_id, t.matched, t.why) for t in decision.trace] == [
        ("off", None, "disabled"),
        ("updates", None, "runs only on ticket_updated"),
        ("replies", True, "no conditions: always matches"),
    ]
    assert decision.actions == [Close()]


# --- Time ----------------------------------------------------------------------------------

BUSINESS = {"field": "time.business_hours", "op": "equals", "value": True}


@pytest.mark.parametrize("zone", ["Europe/Copenhagen", "Europe/Stockholm"])
@pytest.mark.parametrize(
    ("now", "open_"),
    [
        # Sunday 30 March 2025 the clocks go forward: Friday is UTC+1, Monday UTC+2.
        (datetime(2025, 3, 28, 6, 59, tzinfo=UTC), False),  # Fri 07:59 CET
        (datetime(2025, 3, 28, 7, 0, tzinfo=UTC), True),  # Fri 08:00 CET
        (datetime(2025, 3, 28, 13, 59, tzinfo=UTC), True),  # Fri 14:59 CET
        (datetime(2025, 3, 28, 14, 0, tzinfo=UTC), False),  # Fri 15:00 CET, closed Fridays
        (datetime(2025, 3, 31, 6, 0, tzinfo=UTC), True),  # Mon 08:00 CEST
        (datetime(2025, 3, 31, 5, 59, tzinfo=UTC), False),  # Mon 07:59 CEST
        (datetime(2025, 3, 31, 14, 0, tzinfo=UTC), False),  # Mon 16:00 CEST
        (datetime(2025, 3, 30, 10, 0, tzinfo=UTC), False),  # Sunday, closed
        # Sunday 26 October 2025 they go back: Monday 27 is UTC+1 again.
        (datetime(2025, 10, 24, 6, 0, tzinfo=UTC), True),  # Fri 08:00 CEST
        (datetime(2025, 10, 27, 6, 30, tzinfo=UTC), False),  # Mon 07:30 CET
        (datetime(2025, 10, 27, 7, 0, tzinfo=UTC), True),  # Mon 08:00 CET
    ],
)
def test_business_hours_across_daylight_saving(zone: str, now: datetime, open_: bool) -> None:
    hours = {"timezone": zone, "hours": {**OPEN_WEEKDAYS, "fri": ["08:00", "15:00"]}}
    assert trace(BUSINESS, {}, now=now, business_hours=hours).matched is open_


def test_weekday_and_hour_are_local() -> None:
    hours = {"timezone": "Europe/Copenhagen", "hours": OPEN_WEEKDAYS}
    late_sunday_utc = datetime(2025, 3, 30, 22, 30, tzinfo=UTC)  # Monday 00:30 CEST
    when = {
        "all": [
            {"field": "time.weekday", "op": "equals", "value": "mon"},
            {"field": "time.hour", "op": "equals", "value": 0},
        ]
    }
    assert trace(when, {}, now=late_sunday_utc, business_hours=hours).matched
    assert trace(
        {"field": "time.weekday", "op": "equals", "value": "sun"}, {}, now=late_sunday_utc
    ).matched


def test_facts_must_have_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        Facts(trigger=Trigger.ticket_created, now=datetime(2025, 1, 1), values={})


# --- Regexes that run too long -------------------------------------------------------------


def test_a_catastrophic_regex_gives_up_in_time_and_says_so() -> None:
    when = {"field": "message.body", "op": "regex", "value": "(a+)+$"}
    started = time.perf_counter()
    result = trace(when, {"message.body": "a" * 5000 + "b"})
    assert time.perf_counter() - started < 0.5
    assert result.matched is False
    assert result.timed_out
    assert "gave up after 5 ms, counted as not matched" in result.why


def test_a_timeout_does_not_hide_another_branch() -> None:
    slow = {"field": "message.body", "op": "regex", "value": "(a+)+$"}
    decision = decide(
        [rule({"any": [slow, VIP]})], {"message.body": "a" * 5000 + "b", "customer.vip": True}
    )
    assert decision.trace[0].matched


# --- The trace ------------------------------------------------------------------------------


def test_why_a_rule_matched_names_the_conditions_and_the_word_found() -> None:
    when = {
        "all": [
            {"field": "message.recipients", "op": "equals", "value": "faktura@firma.dk"},
            {"field": "message.subject", "op": "words", "value": ["regning", "räkning"]},
            {"field": "message.subject", "op": "regex", "value": r"\d{4}"},
        ]
    }
    values = {"message.recipients": ["faktura@firma.dk"], "message.subject": "RÄKNING 2025"}
    assert trace(when, values).why == (
        'message.recipients equals "faktura@firma.dk" and message.subject has the word '
        '"räkning" and message.subject matches /\\d{4}/ ("2025")'
    )


@pytest.mark.parametrize(
    ("when", "values", "why"),
    [
        (
            {"all": [VIP, SUBJECT_FAKTURA]},
            {"customer.vip": False},
            "customer.vip is false, which does not equal true",
        ),
        (
            {"all": [SUBJECT_FAKTURA]},
            {"message.subject": "Hej " * 40},
            'message.subject is "'
            + ("Hej " * 20)[:78]
            + '…, which has none of the words "faktura"',
        ),
        (SUBJECT_FAKTURA, {}, "message.subject is absent"),
        (
            {"field": "customer.open_tickets", "op": "gt", "value": 2},
            {"customer.open_tickets": "many"},
            'customer.open_tickets is "many", not comparable with gt',
        ),
        (
            {"any": [VIP, B2B]},
            {"customer.vip": False, "customer.segment": "b2c"},
            "none of: customer.vip is false, which does not equal true; "
            'customer.segment is "b2c", which does not equal "b2b"',
        ),
        (
            {"not": B2B},
            {"customer.segment": "B2B"},
            'excluded because customer.segment equals "b2b"',
        ),
        (
            {"field": "ticket.tags", "op": "exists", "value": False},
            {"ticket.tags": ["a"]},
            'ticket.tags is present (["a"])',
        ),
    ],
)
def test_why_a_rule_missed(when: dict[str, Any], values: dict[str, Any], why: str) -> None:
    result = trace(when, values)
    assert result.matched is False
    assert result.why == why


def test_the_decision_as_json() -> None:
    decision = decide(
        [
            rule(VIP, "vip", actions=[{"type": "assign", "strategy": "least_loaded"}]),
            rule(B2B, "b"),
        ],
        {"customer.vip": True},
    )
    data = decision.as_json()
    assert json.loads(json.dumps(data)) == {
        "actions": [{"type": "assign", "strategy": "least_loaded"}],
        "rules": [
            {
                "id": "vip",
                "name": "Vip",
                "matched": True,
                "why": "customer.vip equals true",
                "timed_out": False,
                "actions": [{"type": "assign", "strategy": "least_loaded"}],
            },
            {
                "id": "b",
                "name": "B",
                "matched": False,
                "why": "customer.segment is absent",
                "timed_out": False,
                "actions": [],
            },
        ],
        "stopped_by": None,
    }
    data["rules"][0]["actions"].clear()
    assert decision.as_json()["rules"][0]["actions"], "the trace hands out copies"
