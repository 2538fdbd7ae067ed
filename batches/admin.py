"""Admin for batches: staff look at any batch, cancel it, retry its failed rows, export it.

Counters, statuses and engine fields are read-only: the engine writes them, and the
actions go through `batches.services` like the pages do. Every page costs a fixed number
of queries (the changelist reads only Batch columns and the uploader; the row inline is
capped and joins its chat and answer).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from batchchat.admin import INLINE_LIMIT, FirstRowsFormSet, ReadOnlyAdminMixin
from batches.models import Batch, BatchItem, ProviderBatch, WorkerHeartbeat


def _services():
    # Imported when an action runs: batches.services pulls in the engine and the chat
    # pipeline, which every command would otherwise pay for at start (admin autodiscovery).
    from batches import services

    return services


class BatchItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = BatchItem
    formset = FirstRowsFormSet
    extra = 0
    can_delete = False
    show_change_link = False
    fields = (
        "position",
        "question_index",
        "repeat",
        "status",
        "question_excerpt",
        "answer_excerpt",
        "verdict",
        "citation_match",
        "answer_similarity",
        "answer_found",
        "judge_verdict",
        "error",
        "chat_link",
    )
    readonly_fields = fields
    verbose_name_plural = f"rows (the first {INLINE_LIMIT})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[BatchItem]:
        return (
            super().get_queryset(request).select_related("chat", "interaction").order_by("position")
        )

    @admin.display(description="question")
    def question_excerpt(self, item: BatchItem) -> str:
        return Truncator(item.question).chars(120)

    @admin.display(description="answer")
    def answer_excerpt(self, item: BatchItem) -> str:
        return Truncator(item.interaction.answer).chars(160) if item.interaction else ""

    @admin.display(description="chat")
    def chat_link(self, item: BatchItem) -> str:
        url = reverse("admin:chats_chat_change", args=[item.chat_id])
        return format_html('<a href="{}">{}</a>', url, item.chat.chat_id)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "uploader",
        "status",
        "progress",
        "ai_provider",
        "search_provider",
        "page_language",
        "created_at",
    )
    list_filter = ("status", "ai_provider", "search_provider", "page_language", "created_at")
    list_select_related = ("uploader",)
    search_fields = ("name", "uploader__username", "legacy_id")
    date_hierarchy = "created_at"
    raw_id_fields = ("uploader", "run_from")
    readonly_fields = (
        "status",
        "total_items",
        "processed_items",
        "failed_items",
        "last_processed_index",
        "progress",
        "error",
        "legacy_id",
        "source_filename",
        "repeats",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "uploader",
                    "type",
                    ("ai_provider", "model"),
                    "search_provider",
                    "page_language",
                    "apply_overrides",
                )
            },
        ),
        (
            "Progress (written by the engine)",
            {
                "fields": (
                    "status",
                    "progress",
                    ("total_items", "processed_items", "failed_items", "last_processed_index"),
                    "error",
                    ("created_at", "started_at", "finished_at", "updated_at"),
                )
            },
        ),
        ("Origin", {"fields": ("source_filename", "legacy_id", "run_from")}),
        # Repeats make the rows: changing it afterwards would not add or remove any.
        ("Evaluation", {"fields": ("judge_enabled", "repeats")}),
    )
    inlines = (BatchItemInline,)
    actions = ("cancel_batches", "retry_failed_rows", "export_csv")

    @admin.display(description="progress (done / failed / total)")
    def progress(self, batch: Batch) -> str:
        return (
            f"{batch.processed_items} / {batch.failed_items} / {batch.total_items} "
            f"({batch.progress_percent}%)"
        )

    def delete_model(self, request: HttpRequest, obj: Batch) -> None:
        # The service also deletes the batch's chats, which the plain cascade would leave.
        _services().delete_batch(batch=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        for batch in queryset:
            _services().delete_batch(batch=batch)

    def _each(self, request: HttpRequest, queryset: QuerySet[Batch], service, verb: str) -> None:
        changed = 0
        for batch in queryset:
            try:
                service(batch=batch)
            except _services().BatchStateError as exc:
                self.message_user(request, f"“{batch.name}”: {exc}", messages.WARNING)
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{verb} {changed} batch(es).", messages.SUCCESS)

    @admin.action(description="Cancel selected batches (pending rows stop)")
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        self._each(request, queryset, _services().cancel_batch, "Cancelled")

    @admin.action(description="Retry failed and cancelled rows of selected batches")
    def retry_failed_rows(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        self._each(request, queryset, _services().retry_failed, "Queued again")

    @admin.action(description="Export results as CSV (select one batch)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Batch]) -> HttpResponse | None:
        # One response carries one file, and batches have different input columns, so a
        # concatenation would not be one valid CSV: the action takes exactly one batch.
        batches = list(queryset[:2])
        if len(batches) != 1:
            self.message_user(
                request,
                "Select exactly one batch to export: the CSV holds one batch's results "
                "(its own input columns).",
                messages.WARNING,
            )
            return None
        from batches.export import export_response

        return export_response(batches[0], "csv")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """`run_worker` processes as they last reported (read-only: the workers write them)."""

    list_display = (
        "name",
        "alive",
        "last_seen",
        "started_at",
        "current_batch_id",
        "slices",
        "rows_done",
        "rows_failed",
        "stopping",
    )
    list_filter = ("hostname", "stopping")
    search_fields = ("name", "hostname")
    readonly_fields = [field.name for field in WorkerHeartbeat._meta.fields]

    @admin.display(boolean=True, description="alive")
    def alive(self, obj: WorkerHeartbeat) -> bool:
        return obj.is_alive()

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Heartbeats of workers that are gone may be cleared by hand.
        return admin.ModelAdmin.has_delete_permission(self, request, obj)


@admin.register(ProviderBatch)
class ProviderBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Submissions to the providers' batch APIs (economy mode; read-only: the engine
    writes them)."""

    list_display = (
        "local_id",
        "batch",
        "kind",
        "provider",
        "provider_batch_id",
        "status",
        "provider_status",
        "request_count",
        "succeeded_count",
        "failed_count",
        "submitted_at",
        "ended_at",
    )
    list_filter = ("provider", "kind", "status")
    search_fields = ("local_id", "provider_batch_id")
    list_select_related = ("batch",)
    readonly_fields = [field.name for field in ProviderBatch._meta.fields]
