"""Admin for question sets: staff look at a set, its questions (the first INLINE_LIMIT)
and its runs. Read-only: sets change through evaluation.sets (versions)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from batchchat.admin import FirstRowsFormSet, ReadOnlyAdminMixin
from evaluation.models import Question, QuestionSet, Run, Share


class QuestionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Question
    formset = FirstRowsFormSet
    extra = 0
    fields = ("position", "question", "expected_answer", "expected_outcome", "version")
    readonly_fields = fields


class RunInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Run
    extra = 0
    fields = ("batch", "version", "created_at")
    readonly_fields = fields
    show_change_link = False


@admin.register(QuestionSet)
class QuestionSetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "owner", "version", "run_count", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    inlines = (QuestionInline, RunInline)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(run_count=Count("runs"))

    @admin.display(description="runs", ordering="run_count")
    def run_count(self, obj: QuestionSet) -> int:
        return obj.run_count


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Who reviews what; shares are made and removed here or by their owners (pages, API)."""

    list_display = ("user", "role", "batch", "question_set", "shared_by", "created_at")
    list_select_related = ("user", "batch", "question_set", "shared_by")
    list_filter = ("role",)
    search_fields = ("user__username", "batch__name", "question_set__name")
    raw_id_fields = ("user", "batch", "question_set", "shared_by")
    readonly_fields = ("created_at",)
