"""OpenAI's published prices of its realtime models, and the built-in provider at zero.

Dollars per million tokens, from the models' pages on developers.openai.com. A later
change is a new row with its own effective date (in the admin, or a new migration).
"""

from decimal import Decimal

from django.db import migrations

SOURCE = "https://developers.openai.com/api/docs/models/"

# model: (in force from, text in, cached text in, text out, audio in, cached audio in,
#         audio out, image in, cached image in)
OPENAI = {
    "gpt-realtime": ("2025-08-28", "4", "0.40", "16", "32", "0.40", "64", "5", "0.50"),
    "gpt-realtime-mini": ("2025-10-06", "0.60", "0.06", "2.40", "10", "0.30", "20", "0.80", "0.08"),
    "gpt-4o-realtime-preview": ("2024-12-17", "5", "2.50", "20", "40", "2.50", "80", "0", "0"),
    "gpt-4o-mini-realtime-preview": ("2024-12-17", "0.60", "0.30", "2.40", "10", "0.30", "20", "0", "0"),
}
FIELDS = (
    "text_input",
    "cached_text_input",
    "text_output",
    "audio_input",
    "cached_audio_input",
    "audio_output",
    "image_input",
    "cached_image_input",
)


def add_prices(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    for model, (since, *prices) in OPENAI.items():
        for provider in ("openai", "azure"):  # Azure OpenAI bills the same per token
            ModelPrice.objects.update_or_create(
                provider=provider,
                model=model,
                effective_from=f"{since}T00:00:00Z",
                defaults={
                    **{field: Decimal(price) for field, price in zip(FIELDS, prices, strict=True)},
                    "source": SOURCE + model,
                },
            )
    ModelPrice.objects.update_or_create(
        provider="local",
        model="koe-local",
        effective_from="2024-01-01T00:00:00Z",
        defaults={"source": "Built in: runs on the deployment's own machines."},
    )


def remove_prices(apps, schema_editor):
    apps.get_model("billing", "ModelPrice").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_prices_budgets_daily_usage")]

    operations = [migrations.RunPython(add_prices, remove_prices)]
