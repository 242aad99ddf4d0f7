"""Phone numbers as Koe stores them: E.164 (a plus sign, the country code, the number)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def validate_e164(value: str) -> None:
    if not E164.match(value):
        raise ValidationError(
            "Enter the number in E.164 form: a plus sign, the country code and the number, "
            "digits only (e.g. +14155550123)."
        )
