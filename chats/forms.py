from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from chats.models import PromptOverride


class PromptOverrideForm(forms.ModelForm):
    """The user's own system-prompt text, applied to chats uploaded with overrides on."""

    class Meta:
        model = PromptOverride
        fields = ["text", "enabled"]
        labels = {
            "text": _("Override text"),
            "enabled": _("Enabled: apply this text to batches uploaded with overrides on"),
        }
        help_texts = {
            "text": _(
                "Added to the system prompt of every chat whose batch was uploaded with "
                "“Apply my prompt overrides”."
            ),
        }
        widgets = {"text": forms.Textarea(attrs={"rows": 8})}


class FollowUpForm(forms.Form):
    question = forms.CharField(
        label=_("Follow-up question"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
