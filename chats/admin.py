"""Admin for chats, their turns and prompt overrides (read mostly: the pipeline writes them).

Pages cost a fixed number of queries: the chat list annotates the number of turns and
joins the uploader; the turn list joins its chat.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from batchchat.admin import INLINE_LIMIT, FirstRowsFormSet, ReadOnlyAdminMixin
from chats.models import Chat, Interaction, ModelPrice, PromptOverride


class InteractionInline(ReadOnlyAdminMixin, admin.StackedInline):
    model = Interaction
    formset = FirstRowsFormSet
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        ("position", "created_at"),
        "question",
        ("guard_status", "guard_reasons", "guard_fields"),
        "referring_url",
        "answer",
        ("citation_url", "citation_title"),
        "search_query",
        ("model", "input_tokens", "output_tokens", "latency_ms"),
    )
    readonly_fields = (
        "position",
        "created_at",
        "question",
        "guard_status",
        "guard_reasons",
        "guard_fields",
        "referring_url",
        "answer",
        "citation_url",
        "citation_title",
        "search_query",
        "model",
        "input_tokens",
        "output_tokens",
        "latency_ms",
    )
    verbose_name_plural = f"turns (the first {INLINE_LIMIT})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Interaction]:
        # The inline header prints str(turn), which reads its chat.
        return super().get_queryset(request).select_related("chat").order_by("position")


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = (
        "chat_id",
        "uploader",
        "ai_provider",
        "search_provider",
        "page_language",
        "turns",
        "created_at",
    )
    list_filter = ("ai_provider", "search_provider", "page_language", "created_at")
    list_select_related = ("uploader",)
    search_fields = ("chat_id", "uploader__username")
    date_hierarchy = "created_at"
    raw_id_fields = ("uploader",)
    readonly_fields = ("chat_id", "created_at", "updated_at")
    inlines = (InteractionInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chat]:
        return super().get_queryset(request).annotate(turn_count=Count("interactions"))

    @admin.display(description="turns", ordering="turn_count")
    def turns(self, chat: Chat) -> int:
        return chat.turn_count


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = (
        "chat_ref",
        "position",
        "question_excerpt",
        "guard_status",
        "model",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "created_at",
    )
    list_filter = ("guard_status", "chat__ai_provider", "model", "created_at")
    list_select_related = ("chat",)
    search_fields = ("question", "answer", "chat__chat_id", "citation_url")
    date_hierarchy = "created_at"
    raw_id_fields = ("chat", "prompt_override")
    # The guard's outcome is the pipeline's record of what it found: not edited by hand.
    readonly_fields = (
        "created_at",
        "updated_at",
        "guard_status",
        "guard_reasons",
        "guard_fields",
        "redacted_question",
    )

    @admin.display(description="chat", ordering="chat__chat_id")
    def chat_ref(self, interaction: Interaction) -> str:
        return interaction.chat.chat_id

    @admin.display(description="question")
    def question_excerpt(self, interaction: Interaction) -> str:
        return Truncator(interaction.question).chars(80)


@admin.register(PromptOverride)
class PromptOverrideAdmin(admin.ModelAdmin):
    list_display = ("owner", "key", "enabled", "text_excerpt", "updated_at")
    list_filter = ("key", "enabled")
    list_select_related = ("owner",)
    search_fields = ("owner__username", "text")
    raw_id_fields = ("owner",)
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="text")
    def text_excerpt(self, override: PromptOverride) -> str:
        return Truncator(override.text).chars(80)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices staff set here win over AI_PRICES and the shipped table
    (chats.providers.prices); an empty model prices every model of the provider."""

    list_display = (
        "provider",
        "model",
        "input_per_million",
        "output_per_million",
        "batch_discount",
        "date",
        "source",
    )
    list_filter = ("provider",)
    search_fields = ("provider", "model")
    readonly_fields = ("updated_at",)
