"""Cost in Decimal from a response's usage, or a phone call's carrier minutes, and the
price in force when it happened.

Cached tokens are a subset of the input tokens (the API's usage model): of each kind
(text, audio, image) the cached part is priced at the cached rate and the rest at the
full rate. Output tokens are text or audio. Carrier minutes are whole started minutes.
Floats never touch money.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Decimal

from billing.models import AMOUNT_PLACES, CarrierPrice, ModelPrice

PER_MILLION = Decimal(1_000_000)
MINUTE_MS = 60_000
QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)  # a nano-dollar


@dataclass(frozen=True)
class Tokens:
    """One response's tokens by kind, as UsageRecord stores them."""

    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    cached_image_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @classmethod
    def of(cls, record: object) -> Tokens:
        return cls(
            **{field.name: int(getattr(record, field.name, 0) or 0) for field in fields(cls)}
        )


@dataclass(frozen=True)
class CostBreakdown:
    """A call's provider cost by kind: each token kind, and a phone call's carrier minutes."""

    text_input: Decimal = Decimal(0)
    cached_text_input: Decimal = Decimal(0)
    text_output: Decimal = Decimal(0)
    audio_input: Decimal = Decimal(0)
    cached_audio_input: Decimal = Decimal(0)
    audio_output: Decimal = Decimal(0)
    image_input: Decimal = Decimal(0)
    cached_image_input: Decimal = Decimal(0)
    carrier: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return sum((getattr(self, field.name) for field in fields(self)), Decimal(0))

    def __add__(self, other: CostBreakdown) -> CostBreakdown:
        return CostBreakdown(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def as_dict(self) -> dict[str, Decimal]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def price_in_force(provider: str, model: str, at: datetime.datetime) -> ModelPrice | None:
    """The price of ``model`` at ``at``: the latest row in force then (None: not priced)."""
    return (
        ModelPrice.objects.filter(provider=provider, model=model, effective_from__lte=at)
        .order_by("-effective_from")
        .first()
    )


def cost_of(tokens: Tokens, price: ModelPrice) -> CostBreakdown:
    # Usage from older shapes may report cached tokens without their split: text, then.
    cached_text = tokens.cached_text_tokens
    split = tokens.cached_text_tokens + tokens.cached_audio_tokens + tokens.cached_image_tokens
    if tokens.cached_tokens and not split:
        cached_text = tokens.cached_tokens

    def amount(count: int, rate: Decimal) -> Decimal:
        return (Decimal(max(0, count)) * rate / PER_MILLION).quantize(QUANTUM, ROUND_HALF_EVEN)

    return CostBreakdown(
        text_input=amount(tokens.input_text_tokens - cached_text, price.text_input),
        cached_text_input=amount(cached_text, price.cached_text_input),
        text_output=amount(tokens.output_text_tokens, price.text_output),
        audio_input=amount(
            tokens.input_audio_tokens - tokens.cached_audio_tokens, price.audio_input
        ),
        cached_audio_input=amount(tokens.cached_audio_tokens, price.cached_audio_input),
        audio_output=amount(tokens.output_audio_tokens, price.audio_output),
        image_input=amount(
            tokens.input_image_tokens - tokens.cached_image_tokens, price.image_input
        ),
        cached_image_input=amount(tokens.cached_image_tokens, price.cached_image_input),
    )


def carrier_price_in_force(
    carrier: str, direction: str, at: datetime.datetime
) -> CarrierPrice | None:
    """The carrier's per-minute price in ``direction`` at ``at`` (None: not priced)."""
    return (
        CarrierPrice.objects.filter(carrier=carrier, direction=direction, effective_from__lte=at)
        .order_by("-effective_from")
        .first()
    )


def carrier_minutes(duration_ms: int) -> int:
    """The minutes a carrier bills for a call: every started minute counts whole (61 s is
    2 minutes, 0 ms is none). Twilio rounds Programmable Voice and Media Streams minutes up
    so: https://support.twilio.com/hc/en-us/articles/223132307-How-do-you-round-minutes-for-billing
    """
    return -(-max(0, duration_ms) // MINUTE_MS)


def carrier_cost_of(minutes: int, price: CarrierPrice) -> Decimal:
    return (Decimal(minutes) * price.per_minute).quantize(QUANTUM, ROUND_HALF_EVEN)


def billed_amount(
    cost: Decimal, duration_ms: int, margin_percent: Decimal, fee_per_minute: Decimal
) -> Decimal:
    """Provider cost (tokens and carrier minutes alike) plus the operator's margin and
    per-minute fee."""
    minutes = Decimal(duration_ms) / Decimal(60_000)
    billed = cost * (1 + margin_percent / 100) + minutes * fee_per_minute
    return billed.quantize(QUANTUM, ROUND_HALF_EVEN)
