"""Sample arguments made from a parameters schema: plausible, and valid for ordinary schemas."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dashboard.management.commands.seed_demo import BOOKING_PARAMETERS
from tools.actions import BUILTIN_DEFINITIONS
from tools.samples import sample_arguments, sample_value
from tools.schema import EMPTY_PARAMETERS


def is_valid(schema: dict[str, Any], value: Any) -> bool:
    return not list(Draft202012Validator(schema).iter_errors(value))


def test_the_schemas_own_values_come_first() -> None:
    schema = {
        "type": "object",
        "properties": {
            "size": {"type": "string", "enum": ["small", "large"]},
            "seats": {"type": "integer", "default": 4},
            "city": {"type": "string", "examples": ["Lisbon", "Porto"]},
            "country": {"type": "string", "const": "PT"},
        },
    }

    assert sample_arguments(schema) == {
        "size": "small",
        "seats": 4,
        "city": "Lisbon",
        "country": "PT",
    }


def test_each_type_gets_a_value_of_that_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string"},
            "count": {"type": "integer"},
            "price": {"type": "number"},
            "vip": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
            },
            "nothing": {"type": "null"},
        },
    }

    sample = sample_arguments(schema)

    assert sample == {
        "note": "example",
        "count": 1,
        "price": 1,
        "vip": True,
        "tags": ["example"],
        "address": {"street": "example", "zip": "example"},
        "nothing": None,
    }
    assert is_valid(schema, sample)


def test_numbers_respect_their_bounds() -> None:
    assert sample_value({"type": "integer", "minimum": 2, "maximum": 12}) == 2
    assert sample_value({"type": "integer", "exclusiveMinimum": 5}) == 6
    assert sample_value({"type": "integer", "maximum": -3}) == -3
    assert sample_value({"type": "number", "minimum": 0.5, "maximum": 0.75}) == 0.75
    assert sample_value({"type": "integer", "minimum": 7, "multipleOf": 5}) == 10


def test_strings_fit_patterns_formats_lengths_and_names() -> None:
    assert sample_value({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"}) == "19:00"
    assert sample_value({"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}) == "2030-01-15"
    assert sample_value({"type": "string", "format": "email"}) == "caller@example.com"
    assert sample_value({"type": "string", "format": "date-time"}) == "2030-01-15T19:00:00Z"
    assert sample_value({"type": "string", "minLength": 10}) == "exampleexa"
    assert sample_value({"type": "string", "maxLength": 3}) == "exa"
    assert sample_value({"type": "string"}, name="customer_email") == "caller@example.com"
    assert sample_value({"type": "string"}, name="phoneNumber") == "+15555550123"
    assert sample_value({"type": "string"}, name="update_note") == "example"  # not a date


def test_a_pattern_nothing_fits_still_gives_a_string_for_the_person_to_fix() -> None:
    assert sample_value({"type": "string", "pattern": r"^ZZ\d{9}Q$"}) == "example"
    assert sample_value({"type": "string", "pattern": "("}) == "example"  # not a regex


def test_nullable_and_alternative_types_pick_the_useful_one() -> None:
    assert sample_value({"type": ["null", "integer"]}) == 1
    assert sample_value({"anyOf": [{"type": "null"}, {"type": "string"}]}) == "example"
    assert sample_value({"oneOf": [{"type": "boolean"}, {"type": "string"}]}) is True


def test_arrays_have_their_minimum_number_of_items() -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 3}

    assert sample_value(schema) == [1, 1, 1]


@pytest.mark.parametrize(
    "schema",
    [
        BOOKING_PARAMETERS,
        EMPTY_PARAMETERS,
        *(definition["parameters"] for definition in BUILTIN_DEFINITIONS.values()),
    ],
)
def test_samples_of_koes_own_schemas_are_valid(schema: dict[str, Any]) -> None:
    assert is_valid(schema, sample_arguments(schema))


def test_the_demo_booking_gets_a_plausible_sample() -> None:
    assert sample_arguments(BOOKING_PARAMETERS) == {
        "party_size": 1,
        "time": "19:00",
        "name": "Alex Smith",
    }


@pytest.mark.parametrize("parameters", [None, {}, [], "text", {"type": "string"}])
def test_anything_but_an_object_schema_gives_empty_arguments(parameters: Any) -> None:
    assert sample_arguments(parameters) == {}


def test_deep_or_self_similar_schemas_stop() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    inner = schema
    for _ in range(20):
        child: dict[str, Any] = {"type": "object", "properties": {}}
        inner["properties"]["child"] = child
        inner = child

    sample = sample_arguments(schema)

    depth = 0
    while isinstance(sample, dict) and "child" in sample:
        sample, depth = sample["child"], depth + 1
    assert depth < 20
