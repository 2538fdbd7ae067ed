"""A pending row's "resting until" gets its own field.

Until now a row waiting out a rate limit (429/5xx) kept its retry time in
`lease_expires_at`, beside the lease of running rows. `resting_until` holds it now, and
the values move over: every row that is not running (pending ones, and cancelled ones that
come back pending on a retry) with a time in `lease_expires_at` rests until then.
Reversible: the values move back.
"""

from django.db import migrations, models
from django.db.models import F


def move_rests(apps, schema_editor):
    BatchItem = apps.get_model("batches", "BatchItem")
    BatchItem.objects.exclude(status="running").filter(lease_expires_at__isnull=False).update(
        resting_until=F("lease_expires_at"), lease_expires_at=None
    )


def move_rests_back(apps, schema_editor):
    BatchItem = apps.get_model("batches", "BatchItem")
    BatchItem.objects.exclude(status="running").filter(resting_until__isnull=False).update(
        lease_expires_at=F("resting_until"), resting_until=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0009_worker_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="batchitem",
            name="resting_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="batchitem",
            index=models.Index(fields=["status", "resting_until"], name="item_status_resting"),
        ),
        migrations.RunPython(move_rests, move_rests_back, elidable=True),
    ]
