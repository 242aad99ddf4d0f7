"""Sample arguments made from a tool's parameters schema, to start a dashboard test from.

Plausible rather than exhaustive: the schema's own ``const``, ``default``, ``examples`` and
``enum`` come first, then a value of the declared type that respects the usual bounds
(``minimum``, ``minLength``, ``minItems``…) and, for strings, a ``pattern`` or ``format``
when one of a few ordinary values fits it. Anything it cannot satisfy is left for the
person testing to fill in: the schema check then says what is missing.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

MAX_DEPTH = 8  # schemas are checked to 32 levels; a sample needs far fewer

# Values tried in order against a string's ``pattern``; the first that matches is used.
PATTERN_CANDIDATES = (
    "example",
    "19:00",
    "2030-01-15",
    "2030-01-15T19:00:00Z",
    "caller@example.com",
    "+15555550123",
    "12345",
    "A1234",
    "ABC-123",
    "abc123",
    "https://example.com",
    "0",
    "yes",
)
FORMAT_EXAMPLES = {
    "date": "2030-01-15",
    "time": "19:00:00",
    "date-time": "2030-01-15T19:00:00Z",
    "email": "caller@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "hostname": "example.com",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
# A property's name hints at what it holds when the schema says no more than "string".
NAME_HINTS = (
    ("email", "caller@example.com"),
    ("phone", "+15555550123"),
    ("date", "2030-01-15"),
    ("time", "19:00"),
    ("url", "https://example.com"),
    ("name", "Alex Smith"),
)


def sample_arguments(parameters: Any) -> dict[str, Any]:
    """An arguments object for the parameters schema (``{}`` when it declares nothing)."""
    value = sample_value(parameters) if isinstance(parameters, dict) else None
    return value if isinstance(value, dict) else {}


def sample_value(schema: Any, name: str = "", depth: int = 0) -> Any:
    """A value for one schema; ``None`` (JSON null) when nothing plausible is known."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    for keyword in ("const", "default"):
        if keyword in schema:
            return schema[keyword]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for keyword in ("anyOf", "oneOf", "allOf"):
        options = schema.get(keyword)
        if isinstance(options, list) and options:
            # The first option that says something, e.g. {"type": "string"} before {"type": "null"}.
            typed = [option for option in options if _type_of(option) not in {None, "null"}]
            return sample_value((typed or options)[0], name, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        return _sample_object(schema, depth)
    if kind == "array":
        return _sample_array(schema, name, depth)
    if kind == "string":
        return _sample_string(schema, name)
    if kind in {"integer", "number"}:
        return _sample_number(schema, is_integer=kind == "integer")
    if kind == "boolean":
        return True
    return None


def _type_of(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    declared = schema.get("type")
    if isinstance(declared, list):
        # ["string", "null"]: a string is the useful example.
        declared = next((kind for kind in declared if kind != "null"), "null")
    if isinstance(declared, str):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _sample_object(schema: dict[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        str(name): sample_value(property_schema, str(name), depth + 1)
        for name, property_schema in properties.items()
    }


def _sample_array(schema: dict[str, Any], name: str, depth: int) -> list[Any]:
    items = schema.get("items")
    if not isinstance(items, dict):
        return []
    count = schema.get("minItems")
    count = count if isinstance(count, int) and 1 <= count <= 10 else 1
    return [sample_value(items, name, depth + 1) for _ in range(count)]


def _sample_string(schema: dict[str, Any], name: str) -> str:
    pattern = schema.get("pattern")
    candidates: list[str] = []
    format_example = FORMAT_EXAMPLES.get(str(schema.get("format", "")))
    if format_example:
        candidates.append(format_example)
    words = _words(name)
    candidates.extend(value for hint, value in NAME_HINTS if hint in words)
    if isinstance(pattern, str):
        candidates.extend(PATTERN_CANDIDATES)
    candidates.append("example")
    for candidate in candidates:
        value = _fit_length(candidate, schema)
        if not isinstance(pattern, str) or _matches(pattern, value):
            return value
    return _fit_length("example", schema)


def _words(name: str) -> set[str]:
    """customer_email, customerEmail → {"customer", "email"}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word}


def _matches(pattern: str, value: str) -> bool:
    try:
        # JSON Schema patterns are not anchored: a match anywhere counts.
        return re.search(pattern, value) is not None
    except re.error:
        return False


def _fit_length(value: str, schema: dict[str, Any]) -> str:
    minimum, maximum = schema.get("minLength"), schema.get("maxLength")
    if isinstance(minimum, int) and len(value) < minimum:
        value = (value * math.ceil(minimum / max(len(value), 1)))[: max(minimum, 0)]
    if isinstance(maximum, int) and maximum >= 0 and len(value) > maximum:
        value = value[:maximum]
    return value


def _sample_number(schema: dict[str, Any], *, is_integer: bool) -> int | float:
    low = _bound(schema, "minimum", "exclusiveMinimum", step=1)
    high = _bound(schema, "maximum", "exclusiveMaximum", step=-1)
    value: float = 1
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    multiple = schema.get("multipleOf")
    if _is_number(multiple) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    if is_integer:
        whole = math.ceil(value)
        return math.floor(value) if high is not None and whole > high else whole
    return int(value) if float(value).is_integer() else value


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, *, step: int) -> float | None:
    if _is_number(schema.get(inclusive)):
        return float(schema[inclusive])
    if _is_number(schema.get(exclusive)):
        return float(schema[exclusive]) + step
    return None


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
