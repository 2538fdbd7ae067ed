"""BatchUpload: the form above the batch list."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.functional import lazy
from django.utils.translation import get_language, gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from batches.ingest import ACCEPTED_QUESTION_HEADERS, ParsedUpload, UploadError, parse_upload_file
from chats.documents import index_info, shipped_sample
from chats.models import Language
from chats.services import provider_choices, search_choices

# The providers' labels live in chats (English, as the API returns them); the form shows
# them translated. Listed here so that makemessages finds them.
PROVIDER_LABELS = (
    gettext_noop("Extractive (offline, no AI model)"),
    gettext_noop("OpenAI-compatible server"),
    gettext_noop("No search"),
    gettext_noop("Local documents (offline)"),
    gettext_noop("Google Programmable Search"),
)

# "provider::model" in one select: the model list depends on the provider, and one
# select with an optgroup per provider works without JavaScript.
MODEL_SEPARATOR = "::"


def model_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Enabled providers' models as optgroups (the provider's label) of ("provider::model",
    "provider / model"), as the batch list shows them."""
    return [
        (
            gettext(label),
            [(f"{key}{MODEL_SEPARATOR}{model}", f"{key} / {model}") for model in models],
        )
        for key, label, models in provider_choices()
        if models
    ]


def local_search_help() -> str:
    """What the `local` index holds, and how to get answers about other subjects."""
    info = index_info()
    if shipped_sample(info):
        holds = gettext("the pages of the BatchChat user guide shipped as a sample")
    elif info.documents is None:
        holds = gettext("the documents of %(folder)s (indexed on first use)") % {
            "folder": info.docs_dir
        }
    else:
        holds = gettext("%(count)s documents indexed from %(folder)s") % {
            "count": info.documents,
            "folder": info.docs_dir,
        }
    return gettext(
        "“Local documents (offline)” searches %(holds)s; questions on other subjects are "
        "answered “not found”. Index your own documents with "
        "“manage.py index_documents FOLDER”, or configure a web search and an AI "
        "provider in the server settings (see the README)."
    ) % {"holds": holds}


def _file_help() -> str:
    # The same names as the "no question column" error (ingest.ACCEPTED_QUESTION_HEADERS).
    return gettext(
        "One question per row, in a column named one of: %(names)s (case, spaces, _ "
        "and - do not matter). Optional: url or referringurl (the page asked from), "
        "chatid (rows sharing it are one conversation). Other columns are kept and "
        "come back in the results."
    ) % {"names": ACCEPTED_QUESTION_HEADERS}


class BatchUploadForm(forms.Form):
    name = forms.CharField(
        label=_("Batch name"),
        max_length=200,
        required=False,
        help_text=_("Leave empty to use the file name."),
    )
    file = forms.FileField(
        label=_("Questions file (CSV or XLSX)"),
        help_text=lazy(_file_help, str)(),
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
        search = search_choices()
        self.fields["search_provider"].choices = [(key, gettext(label)) for key, label in search]
        if any(key == "local" for key, _label in search):
            self.fields["search_provider"].help_text = local_search_help()
        self.fields["search_provider"].initial = settings.DEFAULT_SEARCH_PROVIDER
        # Questions are usually asked in the language the person works in.
        language = (get_language() or "en")[:2]
        if language in Language.values:
            self.fields["page_language"].initial = language
        self.parsed: ParsedUpload | None = None

    def clean_file(self):
        upload = self.cleaned_data["file"]
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
