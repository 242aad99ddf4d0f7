"""CallExport.masks_phone_numbers: whether an export's file masks phone calls' numbers."""

from typing import Any

from django.db import migrations, models


def finished_exports_did_not_mask(apps: Any, schema_editor: Any) -> None:
    # Files written before this field masked nothing: say so on their rows. An export not
    # yet written keeps the default (masked), as nobody knows now who may see its numbers.
    CallExport = apps.get_model("audit", "CallExport")
    CallExport.objects.filter(status="done").update(masks_phone_numbers=False)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_exported_calls"),
    ]

    operations = [
        migrations.AddField(
            model_name="callexport",
            name="masks_phone_numbers",
            field=models.BooleanField(default=True),
        ),
        migrations.RunPython(finished_exports_did_not_mask, migrations.RunPython.noop),
    ]
