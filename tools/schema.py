"""Validation of tool definitions: function names and JSON-Schema parameters."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

# OpenAI's rule for function (tool) names, which Azure and the local provider share.
FUNCTION_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "required": []}

# Deeper schemas would exhaust jsonschema's recursion; OpenAI allows 10 levels of objects.
MAX_SCHEMA_DEPTH = 32


def _nesting_depth(value: Any, limit: int) -> int:
    if not isinstance(value, dict | list) or limit < 0:
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_nesting_depth(child, limit - 1) for child in children), default=0)


def validate_function_name(value: str) -> None:
    if not FUNCTION_NAME_PATTERN.fullmatch(value or ""):
        raise ValidationError(
            "Use 1 to 64 letters, digits, underscores or hyphens (no spaces or dots), "
            "as the model's function-calling rules require.",
            code="invalid_function_name",
        )


def validate_parameters_schema(value: Any) -> None:
    """The parameters must be a valid JSON Schema (2020-12) describing an object."""
    if not isinstance(value, dict):
        raise ValidationError(
            "Parameters must be a JSON object (a JSON Schema).", code="not_object"
        )
    if _nesting_depth(value, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        raise ValidationError(
            "The parameters schema is nested too deeply (at most %(limit)d levels).",
            code="too_deep",
            params={"limit": MAX_SCHEMA_DEPTH},
        )
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as error:
        location = "/".join(str(part) for part in error.path) or "(root)"
        raise ValidationError(
            "Not a valid JSON Schema at %(location)s: %(message)s",
            code="invalid_schema",
            params={"location": location, "message": error.message},
        ) from error
    if value.get("type") != "object":
        raise ValidationError(
            'The parameters schema must have "type": "object" at its root.',
            code="root_not_object",
        )
    properties = value.get("properties", {})
    for required in value.get("required", []):
        if required not in properties:
            raise ValidationError(
                "Required parameter %(name)s is not listed in properties.",
                code="unknown_required",
                params={"name": required},
            )
