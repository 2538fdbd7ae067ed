from django.conf import settings
from django.db import migrations, models

CHUNK = 500


def compute_verdicts(apps, schema_editor):
    """Graded rows get their verdict by today's rules (evaluation.grading.decide_verdict); a
    blocked row never counts as an answer found. Nothing else changes."""
    # The rules at this migration's date live in the evaluation app (which reads batches);
    # a migration runs with every app installed, so this one import is allowed.
    from evaluation.grading import decide_verdict

    BatchItem = apps.get_model("batches", "BatchItem")
    graded = (
        BatchItem.objects.filter(graded_at__isnull=False, interaction__isnull=False)
        .select_related("interaction")
        .order_by("pk")
    )
    last = 0
    while chunk := list(graded.filter(pk__gt=last)[:CHUNK]):
        for item in chunk:
            answer_type = item.interaction.answer_type
            if answer_type == "blocked":
                item.answer_found = False
            item.verdict, item.verdict_reason = decide_verdict(
                expected_outcome=item.expected_outcome,
                answer_type=answer_type,
                citation_match=item.citation_match,
                judge_verdict=item.judge_verdict,
                similarity=item.answer_similarity,
                threshold=settings.GRADE_SIMILARITY_PASS,
            )
        BatchItem.objects.bulk_update(chunk, ["answer_found", "verdict", "verdict_reason"])
        last = chunk[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0011_item_expected_outcome"),
        ("chats", "0003_answer_type"),
    ]

    operations = [
        migrations.AddField(
            model_name="batchitem",
            name="verdict",
            field=models.CharField(
                blank=True,
                choices=[("pass", "Pass"), ("fail", "Fail"), ("ungraded", "Ungraded")],
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="batchitem",
            name="verdict_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("outcome", "Expected outcome"),
                    ("citation", "Expected citation"),
                    ("judge", "AI judge"),
                    ("similarity", "Similarity"),
                    ("nothing", "Nothing to grade against"),
                ],
                max_length=12,
            ),
        ),
        migrations.RunPython(compute_verdicts, migrations.RunPython.noop),
    ]
