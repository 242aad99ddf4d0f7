"""What kind of value each property of a tool's JSON-Schema parameters wants."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from speech.words import name_words, word_set


class Kind(enum.Enum):
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"  # a string enum
    CHOICES = "choices"  # an array of a string enum
    TIME = "time"
    DATE = "date"
    DATETIME = "datetime"
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    TEXT = "text"
    UNSUPPORTED = "unsupported"


_FORMAT_KINDS = {
    "date": Kind.DATE,
    "time": Kind.TIME,
    "date-time": Kind.DATETIME,
    "email": Kind.EMAIL,
}
_KIND_HINTS = word_set("datetime date day time hour email phone telephone mobile name surname")
_NOT_PERSON_NAMES = word_set("product company business file item street city")


def schema_properties(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The properties of an object schema, by name, leaving out any that are not schemas."""
    found = parameters.get("properties") or {}
    return {name: schema for name, schema in found.items() if isinstance(schema, dict)}


def json_type(schema: Mapping[str, Any]) -> str | None:
    """The property's JSON type; of ["string", "null"], the one that is not null."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    return kind if isinstance(kind, str) else None


def property_kind(name: str, schema: Mapping[str, Any]) -> Kind:
    """What a property wants, from its type and format, else from the words in its name."""
    json_kind = json_type(schema)
    choices = schema.get("enum")
    if isinstance(choices, list) and choices:
        if all(isinstance(choice, int | float) for choice in choices):
            return Kind.INTEGER if json_kind == "integer" else Kind.NUMBER
        return Kind.CHOICE
    if json_kind == "array":
        items = schema.get("items")
        return Kind.CHOICES if isinstance(items, dict) and items.get("enum") else Kind.UNSUPPORTED
    simple = {"boolean": Kind.BOOLEAN, "integer": Kind.INTEGER, "number": Kind.NUMBER}
    if json_kind in simple:
        return simple[json_kind]
    if json_kind not in ("string", None):
        return Kind.UNSUPPORTED
    if schema.get("format") in _FORMAT_KINDS:
        return _FORMAT_KINDS[schema["format"]]
    words = set(name_words(name))
    if not words & _KIND_HINTS:  # "when": "Date of the visit"
        words |= set(str(schema.get("description", "")).lower().split()[:1])
    if "datetime" in words or {"date", "time"} <= words:
        return Kind.DATETIME
    if words & {"time", "hour"} or ":" in str(schema.get("pattern", "")):
        return Kind.TIME
    if words & {"date", "day"}:
        return Kind.DATE
    if "email" in words:
        return Kind.EMAIL
    if words & {"phone", "telephone", "mobile"}:
        return Kind.PHONE
    if words & {"name", "surname"} and not words & _NOT_PERSON_NAMES:
        return Kind.NAME
    return Kind.TEXT
