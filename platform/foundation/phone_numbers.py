"""Phone numbers as Koe stores them: E.164 (a plus sign, the country code, the number),
checked on the way in and masked for people who may not see them."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

# ITU-T E.164 country codes are a prefix code: 1 and 7 are one digit, these two digits, and
# every other code three (codes the ITU assigns now are three digits, so the table holds).
ONE_DIGIT_COUNTRY_CODES = frozenset({"1", "7"})
TWO_DIGIT_COUNTRY_CODES = frozenset(
    {
        *("20", "27", "30", "31", "32", "33", "34", "36", "39"),
        *("40", "41", "43", "44", "45", "46", "47", "48", "49"),
        *("51", "52", "53", "54", "55", "56", "57", "58"),
        *("60", "61", "62", "63", "64", "65", "66"),
        *("81", "82", "84", "86"),
        *("90", "91", "92", "93", "94", "95", "98"),
    }
)
# A fixed run, not one per hidden digit, so the mask does not tell the number's length.
MASK = "•" * 7
SHOWN_LAST_DIGITS = 2


def validate_e164(value: str) -> None:
    if not E164.match(value):
        raise ValidationError(
            "Enter the number in E.164 form: a plus sign, the country code and the number, "
            "digits only (e.g. +14155550123)."
        )


def is_e164(value: str) -> bool:
    # fullmatch: "$" alone would also let a trailing newline through.
    return E164.fullmatch(value) is not None


def country_code(number: str) -> str:
    """The country calling code of an E.164 number (without the plus sign)."""
    digits = number.removeprefix("+")
    if digits[:1] in ONE_DIGIT_COUNTRY_CODES:
        return digits[:1]
    if digits[:2] in TWO_DIGIT_COUNTRY_CODES:
        return digits[:2]
    return digits[:3]


def mask_phone_number(value: str) -> str:
    """An E.164 number with only its country code and last two digits ("+1•••••••99").

    Anything else comes back unchanged: a phone call's end user is a number only when the
    tenant gave no reference of its own, and a tenant's reference is not the person's number.
    The country code and the last digits tell callers apart in a list without saying who.
    """
    if not is_e164(value):
        return value
    return f"+{country_code(value)}{MASK}{value[-SHOWN_LAST_DIGITS:]}"
