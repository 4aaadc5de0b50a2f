"""Folding and whole-word matching of trigger words in the Nordic languages and English."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.routing.text import WordMatcher, fold, words


def find(phrases: list[str], text: str) -> str | None:
    folded = fold(text)
    return WordMatcher(phrases).find([folded], frozenset(words(folded)))


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Räkning", "rakning"),
        ("RÄKNING", "rakning"),
        ("Ærgerlig", "aergerlig"),
        ("Øl og Åbningstider", "ol og abningstider"),
        ("Straße", "strasse"),
        ("Þórður Ðóra", "thordur dora"),
        ("Œuvre", "oeuvre"),
        ("Hyvää päivää, työ", "hyvaa paivaa, tyo"),
        ("ﬁnd", "find"),
        ("plain ascii", "plain ascii"),
    ],
)
def test_fold_drops_case_accents_and_nordic_letters(text: str, folded: str) -> None:
    assert fold(text) == folded


@given(st.text())
def test_folding_twice_changes_nothing(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@pytest.mark.parametrize(
    ("phrases", "text", "found"),
    [
        (["faktura"], "FAKTURA, tak", "faktura"),
        (["faktura"], "Min faktura.", "faktura"),
        (["faktura"], "faktura", "faktura"),
        (["faktura"], "(faktura)", "faktura"),
        (["faktura"], "faktura-nr 12", "faktura"),
        (["faktura"], "fakturaen er forkert", None),
        (["faktura"], "kreditfaktura", None),
        (["faktura"], "faktura2024", None),
        (["räkning"], "Min rakning kom inte", "räkning"),
        (["rakning"], "Min RÄKNING kom inte", "rakning"),
        (["ærgerlig"], "Det er AERGERLIG", "ærgerlig"),
        (["søknad"], "Søknad om permisjon", "søknad"),
        (["lasku"], "Laskun eräpäivä", None),
        (["lasku"], "Lasku on väärin", "lasku"),
        (["invoice"], "Your invoice, please", "invoice"),
        (["regning", "lasku"], "lasku og regning", "regning"),
        (["ikke virker"], "det IKKE\n  virker", "ikke virker"),
        (["ikke virker"], "virker ikke", None),
        (["e-mail"], "send en e-mail", "e-mail"),
        (["e-mail"], "send en email", None),
    ],
)
def test_words_match_whole_words_only(phrases: list[str], text: str, found: str | None) -> None:
    assert find(phrases, text) == found


_letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyzæøåäö", min_size=1, max_size=8)


@given(word=_letters, before=_letters, after=_letters)
def test_words_never_match_inside_longer_words(word: str, before: str, after: str) -> None:
    assert find([word], f"1 {before}{word}{after} 2, {before}{word} {word}{after}") is None


@given(word=_letters, separator=st.sampled_from([" ", ", ", ".\n", "!", " - ", "\t"]))
def test_words_match_between_any_separators(word: str, separator: str) -> None:
    assert find([word], f"start{separator}{word.upper()}{separator}end") == word
