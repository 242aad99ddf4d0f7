"""Mock tools: a fixed reply whose {argument_name} placeholders are filled from the call.

The template is tenant input and the arguments come from a model that callers talk to,
so rendering is a plain substitution of names, never ``str.format`` (which would follow
``{name.attribute}`` and ``{name[key]}`` into Python objects). Anything between braces
that is not a placeholder name stays as it was written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# A placeholder is a parameter name between braces: {party_size}, {time}.
PLACEHOLDER_PATTERN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


def placeholder_names(template: str) -> list[str]:
    """The distinct placeholder names in a template, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER_PATTERN.findall(template or "")))


def render_template(template: str, arguments: Mapping[str, Any]) -> str:
    """Fill each {name} with the argument of that name; a missing one becomes empty."""

    def value_of(match: re.Match[str]) -> str:
        return spoken_value(arguments.get(match.group(1)))

    return PLACEHOLDER_PATTERN.sub(value_of, template)


def spoken_value(value: Any) -> str:
    """An argument as text to speak: numbers as written, booleans as yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(_is_scalar(item) for item in value):
        return ", ".join(spoken_value(item) for item in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
