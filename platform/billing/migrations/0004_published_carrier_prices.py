"""Twilio's published US per-minute voice rates: receiving a call on a local number, and
making a call. A later change is a new row with its own effective date (in the admin, or a
new migration).

No Telnyx row: no citable published US per-minute rate for Telnyx's Voice API (Call
Control with media streaming) was found. Until the operator adds one in the admin, Telnyx
calls have no carrier cost and their cost page says "no carrier price".
"""

from decimal import Decimal

from django.db import migrations

SOURCE = "https://support.twilio.com/hc/en-us/articles/223183328-How-Volume-Pricing-works-at-Twilio"
# The page quotes the rates without a date: in force from before Koe took phone calls.
SINCE = "2024-01-01T00:00:00Z"
TWILIO = {"inbound": "0.0085", "outbound": "0.013"}


def add_prices(apps, schema_editor):
    CarrierPrice = apps.get_model("billing", "CarrierPrice")
    for direction, per_minute in TWILIO.items():
        CarrierPrice.objects.update_or_create(
            carrier="twilio",
            direction=direction,
            effective_from=SINCE,
            defaults={"per_minute": Decimal(per_minute), "currency": "USD", "source": SOURCE},
        )


def remove_prices(apps, schema_editor):
    apps.get_model("billing", "CarrierPrice").objects.filter(
        carrier="twilio", effective_from=SINCE
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_carrier_prices")]

    operations = [migrations.RunPython(add_prices, remove_prices)]
