"""Era 1 inline: batches that hold their rows in `entries`, converted in place by the
0003 data migration (`convert_inline_batches(apps)`) or by `migrate_batches` without
--from on a database restored from a dump of the old schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from batches.legacy.rows import convert_entry
from batches.legacy.values import LegacyDocumentError
from batches.legacy.writer import finish_batch, write_rows


@dataclass
class ConversionResult:
    batches: int = 0
    items: int = 0
    interactions: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def convert_inline_batch(batch, entries: list, *, Chat, Interaction, BatchItem) -> ConversionResult:
    """Turn one batch's inline entries into items; positions that have an item are skipped.

    Every entry becomes exactly one item at position = its index (an entry without a
    question becomes a failed row saying so), so running this again creates nothing.
    """
    result = ConversionResult(batches=1)
    if not batch.search_provider:
        # The old app left it empty when it searched nothing; "" is not a provider here.
        batch.search_provider = "none"
        batch.save(update_fields=["search_provider"])
    existing = set(BatchItem.objects.filter(batch=batch).values_list("position", flat=True))
    todo = [(p, convert_entry(e)) for p, e in enumerate(entries or []) if p not in existing]
    written = write_rows(
        batch,
        [row for _, row in todo],
        positions=[p for p, _ in todo],
        Chat=Chat,
        Interaction=Interaction,
        BatchItem=BatchItem,
    )
    result.items = written.items
    result.interactions = written.interactions
    result.notes = written.notes
    finish_batch(batch, BatchItem=BatchItem)
    return result


def convert_inline_batches(
    apps,
    *,
    batch_size: int = 100,
    progress: Callable[[ConversionResult], None] | None = None,
) -> ConversionResult:
    """Every batch that still holds inline entries, one transaction each.

    Batches are read by primary-key ranges rather than one open cursor, because SQLite
    gives no isolation between a cursor and writes on the same connection.
    """
    from django.db import transaction

    Batch = apps.get_model("batches", "Batch")
    models = {
        "Chat": apps.get_model("chats", "Chat"),
        "Interaction": apps.get_model("chats", "Interaction"),
        "BatchItem": apps.get_model("batches", "BatchItem"),
    }
    total = ConversionResult()
    last_pk = 0
    while True:
        chunk = list(Batch.objects.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
        if not chunk:
            break
        last_pk = chunk[-1].pk
        for batch in chunk:
            label = batch.legacy_id or batch.pk
            with transaction.atomic():
                if batch.entries:
                    result = convert_inline_batch(batch, batch.entries, **models)
                elif batch.interactions:
                    total.skipped.append(
                        f"batch {label}: {len(batch.interactions)} interaction references "
                        "and no inline entries; import them with "
                        "`manage.py migrate_batches --from DIR`"
                    )
                    continue
                else:
                    # No rows at all: counters become an honest recount (zero).
                    finish_batch(batch, BatchItem=models["BatchItem"])
                    result = ConversionResult(batches=1)
            total.batches += result.batches
            total.items += result.items
            total.interactions += result.interactions
            total.notes += result.notes
        if progress is not None:
            progress(total)
    return total


def convert_legacy_database(
    *,
    dry_run: bool = False,
    batch_size: int = 100,
    database: str = "default",
    progress: Callable[[str], None] = lambda message: None,
) -> ConversionResult | None:
    """Convert a database restored from a dump of the old schema (batches at 0001).

    1. read the migration state; if batches stands at 0003 or later there is nothing
       inline to convert and None is returned;
    2. at 0001: migrate batches to 0002 (adds BatchItem beside the inline entries);
       a dry run only counts, with the 0001 models, and migrates nothing;
    3. convert in chunks of `batch_size` batches with the historical models of 0002;
    4. migrate everything to the latest state (0003 then finds nothing left; 0004 drops
       the inline fields).
    """
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[database]
    executor = MigrationExecutor(connection)
    applied = executor.loader.applied_migrations
    if ("batches", "0001_initial") not in applied:
        raise LegacyDocumentError(
            "The batches tables do not exist in this database yet: run `manage.py migrate` "
            "(or restore the old dump first)."
        )
    if ("batches", "0003_inline_entries_to_items") in applied:
        return None
    at_0002 = ("batches", "0002_chat_relation") in applied
    if dry_run:
        node = ("batches", "0002_chat_relation" if at_0002 else "0001_initial")
        Batch = executor.loader.project_state(node).apps.get_model("batches", "Batch")
        result = ConversionResult()
        for entries in Batch.objects.using(database).values_list("entries", flat=True):
            if entries:
                result.batches += 1
                for entry in entries:
                    result.items += 1
                    result.interactions += convert_entry(entry).interaction is not None
        return result
    if not at_0002:
        progress("Migrating batches to 0002_chat_relation (adds rows beside the inline data)")
        call_command("migrate", "batches", "0002_chat_relation", database=database, verbosity=0)
        executor = MigrationExecutor(connection)
    state = executor.loader.project_state(
        [("batches", "0002_chat_relation"), ("chats", "0001_initial")]
    )

    def report(total: ConversionResult) -> None:
        progress(
            f"  {total.batches} batches, {total.items} rows, "
            f"{total.interactions} interactions converted so far"
        )

    result = convert_inline_batches(state.apps, batch_size=batch_size, progress=report)
    progress("Migrating to the latest schema (drops the inline fields)")
    call_command("migrate", database=database, verbosity=0)
    return result
