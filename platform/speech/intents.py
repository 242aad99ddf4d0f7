"""What a caller is asking the scripted engine for: a tool, an FAQ answer, small talk, or to stop.

Tools and FAQ entries are picked by fuzzy matching of what the caller said against FAQ
questions, tool example phrases, tool names and tool descriptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from speech.engine import EngineRequest, FaqEntry, ToolSpec
from speech.replies import ANYTHING_ELSE
from speech.words import (
    MatchText,
    explained,
    match_text,
    name_words,
    similarity,
)

MATCH_THRESHOLD = 0.5  # similarity an utterance needs to count as asking for an intent

_STOP_PHRASES = (
    ("cancel",), ("never", "mind"), ("nevermind",), ("forget", "it"), ("stop",),
    ("don't", "bother"), ("forget", "about", "it"),
)  # fmt: skip


@dataclass(frozen=True)
class Intent:
    """A tool or an FAQ entry, with the phrases that ask for it and how much each counts."""

    phrases: tuple[MatchText, ...]
    name: MatchText | None = None
    description: MatchText | None = None
    tool: ToolSpec | None = None
    faq: FaqEntry | None = None

    def score(self, utterance: MatchText) -> float:
        scores = [similarity(utterance, phrase) for phrase in self.phrases]
        by_name = similarity(utterance, self.name) if self.name else 0.0
        # weaker evidence: the tool's name, or its description explaining what was said
        scores.append(0.8 * by_name)
        if self.description is not None:
            scores.append(0.7 * explained(utterance, self.description))
        # of two tools whose descriptions both mention "time", current_time is named for it
        return max(scores) + 0.05 * by_name


def request_intents(request: EngineRequest) -> list[Intent]:
    """The request's tools, then its answerable FAQ entries, ready to be matched."""
    intents = []
    for tool in request.tools:
        phrases = tuple(match_text(phrase) for phrase in tool.example_phrases)
        name = match_text(" ".join(name_words(tool.name)))
        description = match_text(tool.description) if tool.description.strip() else None
        intents.append(Intent(phrases, name, description, tool=tool))
    for entry in request.faq:
        if entry.question.strip() and entry.answer.strip():
            intents.append(Intent((match_text(entry.question),), faq=entry))
    return intents


def best_intent(intents: Sequence[Intent], utterance: MatchText) -> Intent | None:
    """The intent the utterance asks for, or None if none matches well enough."""
    scores = [intent.score(utterance) for intent in intents]
    if not scores:
        return None
    # ties go to the earlier tool, then to the earlier FAQ entry
    best = max(range(len(scores)), key=lambda index: (scores[index], -index))
    return intents[best] if scores[best] >= MATCH_THRESHOLD else None


def _contains(words: Sequence[str], phrase: Sequence[str]) -> bool:
    size = len(phrase)
    return any(tuple(words[i : i + size]) == tuple(phrase) for i in range(len(words) - size + 1))


def wants_to_stop(words: Sequence[str]) -> bool:
    """Whether the caller called off what was being done: "cancel", "never mind"."""
    return any(_contains(words, phrase) for phrase in _STOP_PHRASES)


def small_talk(words: Sequence[str]) -> str | None:
    """A reply to an utterance made only of pleasantries, or None."""
    said = set(words)
    if not said:
        return None
    if said <= {"hi", "hello", "hey", "hiya", "there", "good", "morning", "afternoon", "evening"}:
        return "Hello! How can I help you?"
    closing = {"no", "nope", "that's", "that", "is", "it", "all", "nothing", "else", "for", "now"}
    closing |= {"bye", "goodbye", "thank", "thanks", "you", "very", "much", "ok", "okay"}
    if said <= closing and (said & {"bye", "goodbye", "no", "nope", "all", "nothing"}):
        return "Thank you for calling. Goodbye!"
    if said & {"thank", "thanks", "cheers"} and said <= closing | {"cheers", "great", "perfect"}:
        return f"You're welcome! {ANYTHING_ELSE}"
    if said <= {"yes", "yeah", "yep", "sure", "please", "i", "do"}:
        return "What can I help you with?"
    return None
