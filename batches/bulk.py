"""Fast inserts of many rows of one model: COPY on PostgreSQL, executemany elsewhere.

`bulk_create` builds a model instance per row and one multi-row INSERT per chunk; for a
100,000-row upload that is most of the time spent. Here rows are plain tuples of the
fields that vary; every other concrete field gets its constant (or its default, or "now"
for auto_now fields), prepared for the database once. The SQL is built from the model's
own metadata, so a field added to the model later is filled with its default.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models
from django.utils import timezone

# Rows per executemany call where there is no COPY (bounds the memory of one call).
EXECUTEMANY_CHUNK = 2000


def insert_rows(
    model: type[models.Model],
    *,
    varying: Sequence[str],
    rows: Iterable[Sequence[Any]],
    constants: dict[str, Any] | None = None,
) -> None:
    """Insert `rows` (tuples in the order of `varying`) into `model`'s table, with
    `constants` for the other fields. Call inside a transaction."""
    constants = constants or {}
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.AutoField)]
    template: list[Any] = []
    slots: list[tuple[int, int, Any]] = []  # (column index, index in a row, converter)
    for index, field in enumerate(fields):
        if field.name in varying:
            slots.append((index, varying.index(field.name), _converter(field)))
            template.append(None)
            continue
        if field.name in constants:
            value = constants[field.name]
            if isinstance(value, models.Model):
                value = value.pk
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
        template.append(field.get_db_prep_save(value, connection))
    unknown = set(varying) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no fields {sorted(unknown)}")

    def values() -> Iterable[list[Any]]:
        for row in rows:
            out = template.copy()
            for column, position, convert in slots:
                value = row[position]
                out[column] = value if convert is None else convert(value)
            yield out

    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in values():
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
            # In chunks: Django's SQLite executemany keeps (tee) every row it is given
            # until the call returns, which for 100,000 rows is ~100 MB.
            rows_left = iter(values())
            while chunk := list(itertools.islice(rows_left, EXECUTEMANY_CHUNK)):
                cursor.executemany(sql, chunk)


def _converter(field: models.Field):
    """How a varying value becomes a database value (None: as it is)."""
    if isinstance(field, models.JSONField):
        return lambda value: json.dumps(value, cls=field.encoder)
    if isinstance(field, models.DateTimeField):
        return lambda value: field.get_db_prep_save(value, connection)
    return None
