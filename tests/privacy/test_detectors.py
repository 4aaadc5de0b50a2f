"""The detectors against numbers written the usual ways, valid and near misses."""

from __future__ import annotations

import pytest
import regex  # type: ignore[import-untyped]
from structlog.testing import capture_logs

from app.privacy.detectors import CustomPattern, Span, detect, detect_html, mask, mask_text

VALID = [
    ("CPR 010190-1234 tak", "010190-1234", "dk_cpr"),
    ("cpr: 0101901234.", "0101901234", "dk_cpr"),
    ("CPR 311299 1234", "311299 1234", "dk_cpr"),
    ("pnr 19811218-9876 hej", "19811218-9876", "se_personnummer"),
    ("pnr 811218-9876", "811218-9876", "se_personnummer"),
    ("pnr 900101+1239 (over 100)", "900101+1239", "se_personnummer"),
    ("samordningsnummer 811278-9873", "811278-9873", "se_samordningsnummer"),
    ("fnr 15059012387", "15059012387", "no_fodselsnummer"),
    ("fnr 150590 12387", "150590 12387", "no_fodselsnummer"),
    ("d-nr 45108695181", "45108695181", "no_d_nummer"),
    ("hetu 131052-308T", "131052-308T", "fi_hetu"),
    ("hetu 010101A123N", "010101A123N", "fi_hetu"),
    ("kort 4111 1111 1111 1111 udløb", "4111 1111 1111 1111", "payment_card"),
    ("kort 4111-1111-1111-1111", "4111-1111-1111-1111", "payment_card"),
    ("kort 5555555555554444", "5555555555554444", "payment_card"),
    ("amex 3782 822463 10005", "3782 822463 10005", "payment_card"),
    ("IBAN DK50 0040 0440 1162 43 TAK", "DK50 0040 0440 1162 43", "iban"),
    ("IBAN SE4550000000058398257466", "SE4550000000058398257466", "iban"),
    ("iban NO9386011117947", "NO9386011117947", "iban"),
    ("GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32", "iban"),
]


@pytest.mark.parametrize(("text", "value", "kind"), VALID)
def test_finds_valid_numbers(text: str, value: str, kind: str) -> None:
    [span] = detect(text)
    assert (text[span.start : span.end], span.kind) == (value, kind)


NEAR_MISSES = [
    "CPR 320190-1234: no 32nd day",
    "CPR 310290-1234: no 31 February",
    "personnummer 811218-9875: wrong check digit",
    "samordningsnummer 811292-9870: day 32 after taking 60 away",
    "fødselsnummer 15059012388: wrong check digit",
    "D-nummer 45108695182: wrong check digit",
    "hetu 131052-308U: wrong control character",
    "kort 4111 1111 1111 1112: fails Luhn",
    "kort 4111 1111 1111 111: 15 digits for a Visa prefix",
    "kort 41111111111111113: 17 digits",
    "IBAN DK50 0040 0440 1162 44: one digit off",
    "ordre 2024-000123, tlf +45 12 34 56 78, 12345678901234567890",
    "telefon 4512345678",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_ignores_near_misses(text: str) -> None:
    assert detect(text) == []


def test_numbers_inside_longer_runs_are_not_findings() -> None:
    assert detect("ref X010190-1234 and 010190-12345 and 4111111111111111999") == []


def test_configured_patterns_find_and_may_overlap_builtins_without_doubling() -> None:
    account = CustomPattern("account", regex.compile(r"\b\d{4}-\d{10}\b"))
    text = "konto 1234-5678901234 og CPR 010190-1234"
    spans = detect(text, [account])
    assert [(s.kind, text[s.start : s.end]) for s in spans] == [
        ("custom:account", "1234-5678901234"),
        ("dk_cpr", "010190-1234"),
    ]


def test_a_slow_pattern_claims_the_whole_text_and_is_logged_instead_of_hanging() -> None:
    catastrophic = CustomPattern("slow", regex.compile(r"(a+)+b"))
    with capture_logs() as logs:
        spans = detect("a" * 5000, [catastrophic], where="message 7 body_text")
    assert spans == [Span("custom:slow", 0, 5000)]
    assert [(e["log_level"], e["pattern"], e["text"]) for e in logs] == [
        ("warning", "slow", "message 7 body_text")
    ]


def test_masking_keeps_separators_length_and_the_last_characters() -> None:
    text = "CPR 010190-1234, kort 4111 1111 1111 1111, IBAN DK50 0040 0440 1162 43."
    masked = mask(text, detect(text))
    assert masked == ("CPR ******-**34, kort **** **** **** 1111, IBAN DK** **** **** **** 43.")
    assert len(masked) == len(text)


def test_a_short_custom_match_keeps_at_most_a_third_visible() -> None:
    assert mask("pin 12", [Span("custom:pin", 4, 6)]) == "pin **"
    assert mask("pin 1234", [Span("custom:pin", 4, 8)]) == "pin ***4"
    assert mask("kode 123456", [Span("custom:kode", 5, 11)]) == "kode ****56"


def test_masking_html_touches_text_and_attribute_values_only() -> None:
    html = '<p title="0101901234">CPR&nbsp;<b>010190-1234</b> &#52;</p>'
    spans = [Span("custom:wide", 0, len(html))]
    masked = mask(html, spans, html=True)
    assert masked.startswith('<p title="')
    assert "<b>" in masked
    assert "</b>" in masked
    assert "</p>" in masked
    assert "&nbsp;" in masked
    assert "&#52;" in masked
    assert "0101901234" not in masked
    assert "010190-1234" not in masked


def test_mask_text_masks_what_the_builtin_detectors_find() -> None:
    assert mask_text("Mit CPR er 010190-1234") == "Mit CPR er ******-**34"
    assert mask_text("Fakturaen er forkert") == "Fakturaen er forkert"


def test_html_is_searched_as_shown_and_as_written() -> None:
    html = (
        '<p>CPR <b>010190</b>-1234, <a href="tel:0101901234">ring</a>, '
        "kort 4111&nbsp;1111&nbsp;1111&nbsp;1111</p>"
    )
    assert mask(html, detect_html(html), html=True) == (
        '<p>CPR <b>******</b>-**34, <a href="tel:********34">ring</a>, '
        "kort ****&nbsp;****&nbsp;****&nbsp;1111</p>"
    )
    assert detect_html("<p>Ordre 12345 &amp; tak</p>") == []


@pytest.mark.parametrize(
    ("html", "masked"),
    [
        ("<p>CPR 0101&#57;0-1234</p>", "<p>CPR ******-**34</p>"),
        ("<p>CPR &#x30;&#X31;0190-1234</p>", "<p>CPR ******-**34</p>"),
        ("<p>CPR &#48;&#49;&#48;&#49;&#57;&#48;-1234</p>", "<p>CPR ******-**34</p>"),
        (
            "<p>kort 4111&nbsp;1111&nbsp;1111&nbsp;1111</p>",
            "<p>kort ****&nbsp;****&nbsp;****&nbsp;1111</p>",
        ),
        ("<p>IBAN &#x44;K50 0040 0440 1162 43</p>", "<p>IBAN &#x44;K** **** **** **** 43</p>"),
    ],
)
def test_a_character_reference_in_a_value_is_masked_whole(html: str, masked: str) -> None:
    # Named references are separators in these values (&nbsp;) and stay; one standing for a
    # digit is starred whole, so writing a number with references does not show it.
    assert mask(html, detect_html(html), html=True) == masked
