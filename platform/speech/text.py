"""Text fit to be spoken: whole sentences, without markdown, cut as the text streams in."""

from __future__ import annotations

import re

# Words that end with a period without ending the sentence.
ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "prof", "st", "sr", "jr", "vs", "e.g", "i.e", "approx", "etc"}
)
# End punctuation (with any closing quote or bracket) followed by a space, or a line break.
# A period followed by a digit ("3.5", "7.30") is no boundary, as it is not followed by space.
_BOUNDARY = re.compile("[.!?\u2026]+[\"'\u201d\u2019)\\]]*(?=\\s)|\n")
_HEADING = re.compile(r"^\s*#+\s*")
_BULLET = re.compile(r"^\s*[-*+•]\s+")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


class SentenceSplitter:
    """Cuts streamed text into whole sentences, fit to be spoken."""

    def __init__(self) -> None:
        self._buffer = ""

    def add(self, text: str) -> list[str]:
        self._buffer += text
        sentences: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            candidate = self._buffer[start : match.end()]
            before = self._buffer[start : match.start()]
            if match.group().startswith(".") and not _ends_sentence(before):
                continue
            start = match.end()
            sentence = speakable(candidate)
            if sentence:
                sentences.append(sentence)
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> list[str]:
        sentence, self._buffer = speakable(self._buffer), ""
        return [sentence] if sentence else []


def _ends_sentence(text_before_period: str) -> bool:
    words = text_before_period.split()
    if not any(character.isalpha() for character in text_before_period):
        return False  # "1." starting a numbered line is no sentence of its own
    last_word = words[-1].lstrip("(\"'\u201c\u2018")
    if last_word.lower() in ABBREVIATIONS:
        return False
    return not (len(last_word) == 1 and last_word.isupper())  # an initial, as in "J. Smith"


def speakable(text: str) -> str:
    """The text without the markdown a voice would read out; "" when nothing is left."""
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = text.replace("*", "").replace("`", "").replace("__", "")
    text = " ".join(text.split())
    return text if any(character.isalnum() for character in text) else ""


def sentences(text: str) -> list[str]:
    """Split a whole text where a voice pauses, so each piece is spoken as soon as ready."""
    splitter = SentenceSplitter()
    return splitter.add(text) + splitter.flush()


class ThinkingFilter:
    """Drops <think>…</think> from streamed text: reasoning models' notes are not for callers.

    Some servers (Ollama, llama.cpp with reasoning models) put the model's reasoning
    inside the answer between these tags; a tag may arrive split across chunks.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._pending = ""
        self._thinking = False

    def add(self, text: str) -> str:
        self._pending += text
        visible: list[str] = []
        while True:
            tag = self.CLOSE if self._thinking else self.OPEN
            found = self._pending.find(tag)
            if found >= 0:
                if not self._thinking:
                    visible.append(self._pending[:found])
                self._pending = self._pending[found + len(tag) :]
                self._thinking = not self._thinking
                continue
            # Keep what could be the start of a tag split across chunks.
            keep = next(
                (n for n in range(len(tag) - 1, 0, -1) if self._pending.endswith(tag[:n])), 0
            )
            cut = len(self._pending) - keep
            if not self._thinking:
                visible.append(self._pending[:cut])
            self._pending = self._pending[cut:]
            return "".join(visible)

    def flush(self) -> str:
        rest, self._pending = ("" if self._thinking else self._pending), ""
        return rest
