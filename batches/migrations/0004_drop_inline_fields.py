"""The inline rows are now BatchItems; the legacy fields go."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0003_inline_entries_to_items"),
    ]

    operations = [
        migrations.RemoveField(model_name="batch", name="entries"),
        migrations.RemoveField(model_name="batch", name="interactions"),
    ]
