from django.db import migrations, models
from django.db.models import Count, Q, Sum

# The phrases as the app reads them: the counters must agree with the rows filter.
from chats.prompts import not_found_q


def count_answers(apps, schema_editor):
    """Existing batches get their answer counters from their rows (one query each)."""
    Batch = apps.get_model("batches", "Batch")
    BatchItem = apps.get_model("batches", "BatchItem")
    done = Q(status="done")
    for batch in Batch.objects.only("pk", "page_language").iterator():
        totals = (
            BatchItem.objects.filter(batch_id=batch.pk)
            .order_by()
            .aggregate(
                not_found_items=Count(
                    "id", filter=done & not_found_q("interaction__answer", batch.page_language)
                ),
                blocked_items=Count("id", filter=done & Q(interaction__guard_status="blocked")),
                input_tokens=Sum("interaction__input_tokens"),
                output_tokens=Sum("interaction__output_tokens"),
            )
        )
        Batch.objects.filter(pk=batch.pk).update(
            **{name: value or 0 for name, value in totals.items()}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0018_cost_budget"),
    ]

    operations = [
        migrations.AddField(
            model_name="batch",
            name="not_found_items",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="batch",
            name="blocked_items",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="batch",
            name="input_tokens",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="batch",
            name="output_tokens",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name="batchitem",
            index=models.Index(fields=["batch", "finished_at"], name="item_batch_finished"),
        ),
        migrations.RunPython(count_answers, migrations.RunPython.noop),
    ]
