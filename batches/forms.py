"""BatchUpload: the form above the batch list."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from batches.ingest import ParsedUpload, UploadError, clean_filename, parse_upload_file
from chats.models import Language
from chats.services import provider_choices, search_choices

# "provider::model" in one select: the model list depends on the provider, and one
# select with an optgroup per provider works without JavaScript.
MODEL_SEPARATOR = "::"


def model_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Enabled providers' models as optgroups (the provider's label) of ("provider::model",
    "provider / model"), as the batch list shows them."""
    return [
        (label, [(f"{key}{MODEL_SEPARATOR}{model}", f"{key} / {model}") for model in models])
        for key, label, models in provider_choices()
        if models
    ]


class BatchUploadForm(forms.Form):
    name = forms.CharField(
        label=_("Batch name"),
        max_length=200,
        required=False,
        help_text=_("Leave empty to use the file name."),
    )
    file = forms.FileField(
        label=_("Questions file (CSV or XLSX)"),
        help_text=_(
            "One question per row, in a column named question (or prompt, problem "
            "details). Optional columns: url, chatid."
        ),
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".csv,.xlsx,text/csv,"
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        ),
    )
    ai_model = forms.ChoiceField(label=_("AI provider and model"))
    search_provider = forms.ChoiceField(label=_("Search provider"))
    page_language = forms.ChoiceField(
        label=_("Page language"), choices=Language.choices, initial=Language.EN
    )
    apply_overrides = forms.BooleanField(label=_("Apply my prompt overrides"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read at request time: which providers are enabled depends on settings/env.
        groups = model_choices()
        self.fields["ai_model"].choices = groups
        default_provider = settings.DEFAULT_AI_PROVIDER
        for _label, options in groups:
            if options and options[0][0].startswith(f"{default_provider}{MODEL_SEPARATOR}"):
                self.fields["ai_model"].initial = options[0][0]
                break
        self.fields["search_provider"].choices = search_choices()
        self.fields["search_provider"].initial = settings.DEFAULT_SEARCH_PROVIDER
        # Questions are usually asked in the language the person works in.
        language = (get_language() or "en")[:2]
        if language in Language.values:
            self.fields["page_language"].initial = language
        self.parsed: ParsedUpload | None = None

    def clean_file(self):
        upload = self.cleaned_data["file"]
        upload.name = clean_filename(upload.name or "")
        try:
            # The parser's message names the problem (and the row or column): shown
            # verbatim next to the field.
            self.parsed = parse_upload_file(file=upload, filename=upload.name)
        except UploadError as error:
            raise forms.ValidationError(error.message, code=error.code) from None
        return upload

    def clean_ai_model(self) -> tuple[str, str]:
        provider, _sep, model = self.cleaned_data["ai_model"].partition(MODEL_SEPARATOR)
        return provider, model
