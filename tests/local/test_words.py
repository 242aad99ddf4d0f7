"""Reading a transcript's words: numbers said as words or digits, and fuzzy phrase matching."""

from __future__ import annotations

import pytest

from speech.words import match_text, similarity, tokenize


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("seven", 7),
        ("twenty-five", 25),
        ("ninety nine", 99),
        ("one hundred and five", 105),
        ("a couple", 2),
        ("12", 12),
    ],
)
def test_numbers_are_read_from_words_and_digits(text: str, number: int) -> None:
    [token] = tokenize(text)
    assert token.number == number


def test_similarity_ignores_number_words_stopwords_and_word_endings() -> None:
    def score(said: str, phrase: str) -> float:
        return similarity(match_text(said), match_text(phrase))

    assert score("I'd like a table for 2 at 7.", "I'd like a table for two at seven") == 1.0
    assert score("Is there parking nearby?", "Where can I park?") > 0.8
    assert score("Can I make a reservation?", "book a table") > 0.5  # reserve is book
    assert score("What's the weather like?", "book a table") < 0.2
