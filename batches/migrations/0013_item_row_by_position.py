"""Rows hold their cells by position in Batch.input_columns (issue 29, header
amplification): every row's JSON had repeated all the header texts.

Lossless both ways: a row becomes the list of its values in the batch's header order,
None where it had no such column; a row with a key its batch's headers lack (or a batch
without input_columns: legacy imports) stays a dict, which BatchItem.columns() still reads.
Backwards, a list becomes the dict of its non-None values by header.
"""

from django.db import migrations

CHUNK = 500


def _convert(apps, convert) -> None:
    Batch = apps.get_model("batches", "Batch")
    BatchItem = apps.get_model("batches", "BatchItem")
    for batch_pk, headers in Batch.objects.values_list("pk", "input_columns").iterator():
        if not headers:
            continue
        items = BatchItem.objects.filter(batch_id=batch_pk).only("pk", "row").order_by("pk")
        last = 0
        while chunk := list(items.filter(pk__gt=last)[:CHUNK]):
            last = chunk[-1].pk
            changed = []
            for item in chunk:
                row = convert(item.row, headers)
                if row is not None:
                    item.row = row
                    changed.append(item)
            if changed:
                BatchItem.objects.bulk_update(changed, ["row"])


def to_positions(row, headers):
    if not isinstance(row, dict) or not set(row) <= set(headers):
        return None
    return [row.get(header) for header in headers]


def to_dicts(row, headers):
    if not isinstance(row, list):
        return None
    return {h: v for h, v in zip(headers, row, strict=False) if v is not None}


def forwards(apps, schema_editor):
    _convert(apps, to_positions)


def backwards(apps, schema_editor):
    _convert(apps, to_dicts)


class Migration(migrations.Migration):
    dependencies = [("batches", "0012_item_verdict")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
