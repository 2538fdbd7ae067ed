from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

# The longest URL kept (referring and citation URLs): the common practical limit of URLs.
URL_MAX_LENGTH = 2048


class Language(models.TextChoices):
    EN = "en", _("English")
    FR = "fr", _("French")


def new_chat_id() -> str:
    """A public, unguessable id for URLs and exports (72 random bits)."""
    return secrets.token_urlsafe(9)


class ChatSettings(models.Model):
    """How questions are answered: the fields a chat and a batch (whose rows' chats copy
    them) both carry."""

    ai_provider = models.CharField(max_length=32)
    model = models.CharField(max_length=128, blank=True)
    search_provider = models.CharField(max_length=32)
    page_language = models.CharField(max_length=2, choices=Language.choices, default=Language.EN)
    apply_overrides = models.BooleanField(default=False)

    class Meta:
        abstract = True


class Chat(ChatSettings):
    """One conversation. It knows nothing of batches: a batch row points to its chat."""

    chat_id = models.CharField(max_length=64, unique=True, default=new_chat_id, editable=False)
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chats",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["uploader", "-created_at"])]

    def __str__(self) -> str:
        return f"Chat {self.chat_id}"

    def get_absolute_url(self) -> str:
        return reverse("chats:detail", args=[self.chat_id])


class PromptOverride(models.Model):
    """A user's own text for part of the system prompt, applied to chats that ask for it."""

    class Key(models.TextChoices):
        SYSTEM = "system", _("System prompt")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="prompt_overrides"
    )
    key = models.CharField(max_length=32, choices=Key.choices, default=Key.SYSTEM)
    text = models.TextField()
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="unique_override_per_owner_key")
        ]

    def __str__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"{self.owner} / {self.key} ({state})"


class GuardStatus(models.TextChoices):
    """What the guard decided (`chats.guard.policy` takes its statuses from here); blank for
    turns stored before it existed."""

    PASSED = "passed", _("Passed")
    REDACTED = "redacted", _("Redacted")
    BLOCKED = "blocked", _("Blocked")


class AnswerType(models.TextChoices):
    """What kind of answer a turn is, in the origin application's words (its files carry
    these codes in the expected citation column); set by the parse step."""

    NORMAL = "normal", _("Answer")
    NOT_FOUND = "not-found", _("Not found")
    NOT_GC = "not-gc", _("Out of scope")
    PT_MUNI = "pt-muni", _("Other jurisdiction")
    CLARIFYING = "clarifying-question", _("Clarifying question")
    BLOCKED = "blocked", _("Blocked")


class ReviewVerdict(models.TextChoices):
    """An expert's judgement of an answer (the review, evaluation.review)."""

    CORRECT = "correct", _("Correct")
    PARTLY_CORRECT = "partly_correct", _("Partly correct")
    INCORRECT = "incorrect", _("Incorrect")
    CANNOT_TELL = "cannot_tell", _("Cannot tell")


class Interaction(models.Model):
    """One turn of a chat: the question, what search found, and the answer."""

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="interactions")
    position = models.PositiveIntegerField()
    # The redacted question unless GUARD_STORE_ORIGINAL (then the question as asked).
    question = models.TextField()
    # What the pipeline used (search query, prompt) when the guard changed the question.
    redacted_question = models.TextField(blank=True)
    guard_status = models.CharField(max_length=16, choices=GuardStatus.choices, blank=True)
    # The kinds found (chats.guard.KINDS), never the values.
    guard_reasons = models.JSONField(default=list, blank=True)
    # Which field held which kind ("question:phone", "url:email"), never the values.
    guard_fields = models.JSONField(default=list, blank=True)
    referring_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    answer = models.TextField(blank=True)
    # Blank for turns stored before answer types existed and not derivable.
    answer_type = models.CharField(max_length=24, choices=AnswerType.choices, blank=True)
    citation_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    citation_title = models.CharField(max_length=500, blank=True)
    search_query = models.TextField(blank=True)
    search_results = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=128, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_override = models.ForeignKey(
        PromptOverride,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="interactions",
    )
    # An expert's review of the answer (evaluation.review): on the turn, so that every
    # row, repeat and run keeps its own. Blank verdict: not reviewed.
    review_verdict = models.CharField(max_length=16, choices=ReviewVerdict.choices, blank=True)
    review_notes = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chat", "position"]
        constraints = [
            models.UniqueConstraint(fields=["chat", "position"], name="unique_interaction_position")
        ]
        indexes = [
            # The few turns the guard changed: a batch page counts its rows per outcome
            # through this index instead of reading every turn in the database.
            models.Index(
                fields=["guard_status"],
                name="interaction_guard_changed",
                condition=models.Q(guard_status__in=["blocked", "redacted"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.chat.chat_id} #{self.position}: {self.question[:60]}"


class ModelPrice(models.Model):
    """A price set by staff in the admin, per million tokens: it wins over AI_PRICES and
    the table shipped in chats/providers/data/prices.json (see chats.providers.prices).
    An empty `model` prices every model of the provider that has no row of its own."""

    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=128, blank=True)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    # The share the provider's batch API takes off (0.5 = half price); 0 = none.
    batch_discount = models.DecimalField(max_digits=4, decimal_places=3, default=0)
    date = models.DateField(help_text=_("When the price was read from its source."))
    source = models.CharField(max_length=500, help_text=_("Where the price comes from."))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="unique_model_price")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model or '*'}"
