"""Data: every inline entry becomes a BatchItem with its Chat (and an Interaction if answered).

The conversion lives in batches.legacy so that `manage.py migrate_batches` runs the same
code. It is idempotent: a batch's positions that already have an item are skipped.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    from batches import legacy

    legacy.convert_inline_batches(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0002_chat_relation"),
        ("chats", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False),
    ]
