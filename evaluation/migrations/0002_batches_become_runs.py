"""Every batch becomes a run of a question set; nothing else changes.

In creation order: a batch run again from another joins its source's set (its lineage
shares one set); any other batch makes a set of its own from its rows (questions, URLs,
conversation keys from shared chats, expectations, the other columns). Identical uploads
are not merged here: that is an offer an upload makes today, not a decision to take for
the user afterwards."""

from django.db import migrations

CHUNK = 500


def _columns(row, headers):
    """A stored row by header (a frozen copy of batches.models.row_columns)."""
    if isinstance(row, dict):
        return row
    if not isinstance(row, list):
        return {}
    return {str(h): v for h, v in zip(headers, row, strict=False) if v is not None}


def batches_become_runs(apps, schema_editor):
    # The fingerprint must equal an upload's today, so that a later identical upload
    # finds the set made here: the pure function, imported from the app.
    from evaluation.fingerprints import QUESTION_FIELDS, chat_keys, fingerprint

    Batch = apps.get_model("batches", "Batch")
    BatchItem = apps.get_model("batches", "BatchItem")
    QuestionSet = apps.get_model("evaluation", "QuestionSet")
    Question = apps.get_model("evaluation", "Question")
    Run = apps.get_model("evaluation", "Run")
    set_of: dict[int, int] = {}
    batches = Batch.objects.filter(set_run__isnull=True).order_by("created_at", "pk")
    for batch in batches.only(
        "pk", "name", "uploader_id", "run_from_id", "input_columns"
    ).iterator():
        if batch.run_from_id in set_of:
            set_of[batch.pk] = set_of[batch.run_from_id]
            Run.objects.create(batch_id=batch.pk, question_set_id=set_of[batch.pk], version=1)
            continue
        items = list(
            BatchItem.objects.filter(batch_id=batch.pk)
            .order_by("position")
            .values(
                "chat_id",
                "question",
                "referring_url",
                "row",
                "expected_answer",
                "expected_citation_url",
                "expected_outcome",
            )
        )
        keys = chat_keys(item["chat_id"] for item in items)
        questions = [
            {
                "position": index,
                "question": item["question"],
                "referring_url": item["referring_url"],
                "chat_key": key,
                "expected_answer": item["expected_answer"],
                "expected_citation_url": item["expected_citation_url"],
                "expected_outcome": item["expected_outcome"],
                "columns": _columns(item["row"], batch.input_columns or []),
            }
            for index, (item, key) in enumerate(zip(items, keys, strict=True))
        ]
        question_set = QuestionSet.objects.create(
            owner_id=batch.uploader_id,
            name=batch.name[:200],
            fingerprint=fingerprint({f: q[f] for f in QUESTION_FIELDS} for q in questions),
        )
        for start in range(0, len(questions), CHUNK):
            Question.objects.bulk_create(
                Question(question_set=question_set, **question)
                for question in questions[start : start + CHUNK]
            )
        set_of[batch.pk] = question_set.pk
        Run.objects.create(batch_id=batch.pk, question_set_id=question_set.pk, version=1)


class Migration(migrations.Migration):
    dependencies = [
        ("evaluation", "0001_question_sets"),
        # Rows are stored by position from batches 0013 on (read with input_columns).
        ("batches", "0015_batch_upload_guard"),
    ]

    operations = [
        migrations.RunPython(batches_become_runs, migrations.RunPython.noop),
    ]
