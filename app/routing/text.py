"""Folding text for trigger words, and finding whole words and phrases in it.

Customers write "Räkning", "rakning" and "RÄKNING", "Ærgerlig" and "aergerlig", so trigger
words are compared after folding: compatibility decomposition (NFKD), casefolding, dropping the
nonspacing marks the decomposition split off (the accents), and spelling out the Nordic
letters that are not an accented base letter (ø→o, æ→ae, œ→oe, ð→d, þ→th; casefolding already
turned ß into ss).

A word is a maximal run of letters, digits and underscores (Unicode ``\\w``): "faktura" is
found in "FAKTURA," and "faktura-nr" but not in "fakturaen" or "fakturanummer" — Nordic
compounds would otherwise match almost anything, and an admin who wants the compounds lists
them. A phrase ("ikke virker") is its words in order with any whitespace between them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

import regex  # type: ignore[import-untyped]  # no stubs published; used for \p{Mn} only

_MARKS = regex.compile(r"\p{Mn}+")
_LETTERS = {"ø": "o", "æ": "ae", "œ": "oe", "ð": "d", "þ": "th"}
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """``text`` without case, accents or Nordic special letters; folding twice changes nothing."""
    if text.isascii():
        return text.lower()
    # Casefolding can yield characters NFKD decomposes further (and the other way round), so
    # decompose after casefolding; the marks go last because both steps can produce them.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    folded = str(_MARKS.sub("", decomposed))
    for letter, spelled in _LETTERS.items():
        # str.replace is several times faster than str.translate with a mapping.
        if letter in folded:
            folded = folded.replace(letter, spelled)
    return folded


def words(folded: str) -> list[str]:
    """The words of already folded text, in order."""
    return _WORD.findall(folded)


class WordMatcher:
    """Finds the first of a list of trigger words or phrases that occurs as whole words.

    Single words are looked up in the set of the text's words, which the caller computes once
    per text and shares between every condition: with a thousand rules that is one pass over
    the text instead of a thousand regex scans. Phrases (and words with punctuation, such as
    "e-mail") are one compiled alternation, searched only when all their words occur.
    """

    __slots__ = ("_phrase_words", "_phrases", "_single_set", "_singles", "pattern")

    def __init__(self, phrases: Iterable[str]) -> None:
        self._singles: dict[str, str] = {}
        """Folded word -> the word as the admin wrote it, in the admin's order."""
        self._phrases: dict[str, str] = {}
        """Folded phrase with single spaces -> the phrase as written."""
        for phrase in phrases:
            folded = " ".join(fold(phrase).split())
            if _WORD.fullmatch(folded):
                self._singles.setdefault(folded, phrase)
            else:
                self._phrases.setdefault(folded, phrase)
        self._single_set = frozenset(self._singles)
        self._phrase_words = [frozenset(words(phrase)) for phrase in self._phrases]
        self.pattern = (
            re.compile(
                r"(?<!\w)(?:"
                + "|".join(_phrase_pattern(phrase) for phrase in self._phrases)
                + r")(?!\w)"
            )
            if self._phrases
            else None
        )

    def find(self, folded_texts: Sequence[str], text_words: frozenset[str]) -> str | None:
        """The trigger word or phrase (as written) found in the texts, or None.

        ``folded_texts`` are the folded texts and ``text_words`` the set of all their words.
        """
        if not self._single_set.isdisjoint(text_words):
            return next(self._singles[word] for word in self._singles if word in text_words)
        if self.pattern is None or not any(needed <= text_words for needed in self._phrase_words):
            return None
        for text in folded_texts:
            found = self.pattern.search(text)
            if found:
                return self._phrases[" ".join(found.group().split())]
        return None


def _phrase_pattern(folded_phrase: str) -> str:
    return r"\s+".join(re.escape(part) for part in folded_phrase.split(" "))
