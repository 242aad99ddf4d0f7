"""Published model and carrier prices, each tenant's billing settings, and daily usage roll-ups."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenancy.models import Tenant

# Model prices are dollars per million tokens, carrier prices dollars per minute; amounts
# are dollars to the nano-dollar.
PRICE = {"max_digits": 12, "decimal_places": 6, "default": Decimal("0")}
AMOUNT_DIGITS, AMOUNT_PLACES = 20, 9


def amount_field(**extra: object) -> models.DecimalField:
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **extra)  # type: ignore[arg-type]


class ModelPrice(models.Model):
    """A provider's published price for one model, in force from a moment on.

    A price change is a new row with a later ``effective_from``: each response is priced
    with the row in force when it happened, so history never changes retroactively.
    """

    provider = models.CharField(max_length=16)
    model = models.CharField(max_length=80)
    effective_from = models.DateTimeField()
    currency = models.CharField(max_length=3, default="USD")
    text_input = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    cached_text_input = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    text_output = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    audio_input = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    cached_audio_input = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    audio_output = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    image_input = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    cached_image_input = models.DecimalField(**PRICE)  # type: ignore[arg-type]
    source = models.CharField(max_length=300, blank=True, help_text="Where the price is published.")

    class Meta:
        ordering = ["provider", "model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model", "effective_from"], name="model_price_unique"
            ),
        ]
        indexes = [models.Index(fields=["provider", "model", "-effective_from"])]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}"


class Carrier(models.TextChoices):
    """The carriers whose minutes are priced, named as a phone call names its carrier (the
    platform core never imports the telephony app, so these are plain strings)."""

    TWILIO = "twilio", "Twilio"
    TELNYX = "telnyx", "Telnyx"


class CarrierDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound (the caller dialled the tenant's number)"
    OUTBOUND = "outbound", "Outbound (the agent called out)"


class CarrierPrice(models.Model):
    """A carrier's published price per call minute in one direction, in force from a
    moment on. As with ``ModelPrice``, a change is a new row with a later
    ``effective_from``: each call is priced with the row in force when it started."""

    carrier = models.CharField(max_length=16, choices=Carrier.choices)
    direction = models.CharField(max_length=16, choices=CarrierDirection.choices)
    per_minute = models.DecimalField(**PRICE, help_text="Dollars per started minute.")  # type: ignore[arg-type]
    currency = models.CharField(max_length=3, default="USD")
    effective_from = models.DateTimeField()
    source = models.URLField(max_length=300, blank=True, help_text="Where the price is published.")

    class Meta:
        ordering = ["carrier", "direction", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "direction", "effective_from"], name="carrier_price_unique"
            ),
        ]
        indexes = [models.Index(fields=["carrier", "direction", "-effective_from"])]

    def __str__(self) -> str:
        return f"{self.carrier} {self.direction} from {self.effective_from:%Y-%m-%d}"


class BudgetMode(models.TextChoices):
    SOFT = "soft", "Soft: notify the owners"
    HARD = "hard", "Hard: notify, then refuse new calls and end live ones past the overrun"


class BillingSettings(models.Model):
    """One per tenant: the operator's margin and the tenant's monthly budget."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="billing")
    margin_percent = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1000"))],
        help_text="Added to the provider cost to give the billed amount.",
    )
    fee_per_minute = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Dollars per call minute, added to the billed amount.",
    )
    monthly_budget = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Billed dollars per calendar month (UTC); empty: no budget.",
    )
    budget_mode = models.CharField(
        max_length=8, choices=BudgetMode.choices, default=BudgetMode.SOFT
    )
    overrun_percent = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal("10"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Hard budget: live calls end once spending passes the budget by this much.",
    )
    # The month ("2026-11") for which each notice was sent, so each goes out once a month.
    notified_80_month = models.CharField(max_length=7, blank=True)
    notified_100_month = models.CharField(max_length=7, blank=True)

    def __str__(self) -> str:
        return f"Billing of {self.tenant}"


class DailyUsage(models.Model):
    """Calls, time, tokens, carrier minutes and money per tenant, agent and UTC day
    (recomputed, not added)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="daily_usage")
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    agent_name = models.CharField(max_length=120)
    day = models.DateField()
    calls = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveBigIntegerField(default=0)
    input_text_tokens = models.PositiveBigIntegerField(default=0)
    input_audio_tokens = models.PositiveBigIntegerField(default=0)
    input_image_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    output_text_tokens = models.PositiveBigIntegerField(default=0)
    output_audio_tokens = models.PositiveBigIntegerField(default=0)
    # Phone calls' carrier minutes as the carrier bills them (whole started minutes) and
    # their cost, which is also part of ``cost``.
    carrier_minutes = models.PositiveBigIntegerField(default=0)
    carrier_cost = amount_field(default=Decimal("0"))
    cost = amount_field(default=Decimal("0"))
    billed = amount_field(default=Decimal("0"))
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "agent_name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "agent", "day"], name="daily_usage_unique"),
        ]
        indexes = [models.Index(fields=["tenant", "day"])]

    def __str__(self) -> str:
        return f"{self.tenant} {self.agent_name} {self.day}"
