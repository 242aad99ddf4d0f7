"""Text from callers and models, made storable.

PostgreSQL refuses a NUL character (U+0000) in text and in jsonb, so one NUL typed by a
caller (or produced by a model) would make every write of a call's transcript fail. It
is replaced, visibly, wherever such text is stored.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def storable_json(value: Any) -> Any:
    """``storable`` applied to every string (and key) inside a JSON value."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    if isinstance(value, dict):
        return {storable(str(key)): storable_json(item) for key, item in value.items()}
    return value
