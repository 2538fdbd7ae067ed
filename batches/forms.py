"""BatchUpload: the form above the batch list."""

from __future__ import annotations

from functools import cached_property

from django import forms
from django.utils.functional import lazy
from django.utils.translation import get_language, gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from batches.errors import UploadError
from batches.models import Batch, UploadDraft
from batches.services import MAX_REPEATS, upload_draft_preview
from batches.upload_guard import screened_sample
from batches.uploads import (
    ACCEPTED_QUESTION_HEADERS,
    PREVIEW_ROWS,
    ColumnChoice,
    ParsedUpload,
    clean_filename,
    parse_upload,
    read_upload_bytes,
)
from chats.models import Language
from chats.services import (
    ProviderNotConfigured,
    default_chat_settings,
    index_info,
    provider_choices,
    search_choices,
    shipped_sample,
)

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
    # The same names as the "no question column" error (uploads.ACCEPTED_QUESTION_HEADERS).
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
    judge_enabled = forms.BooleanField(
        label=_("Grade answers with an AI judge"),
        required=False,
        help_text=_(
            "Rows with an expected answer are also judged by the batch's AI model (one more "
            "call per row). Off by default."
        ),
    )
    repeats = forms.IntegerField(
        label=_("Answers per question"),
        required=False,
        min_value=1,
        max_value=MAX_REPEATS,
        initial=1,
        help_text=lazy(
            lambda: (
                gettext(
                    "Ask each question this many times (1 to %(max)s) to see how often it passes: "
                    "pass@k (at least one answer passed) and pass^k (every one did). Each "
                    "answer is one more provider call."
                )
                % {"max": MAX_REPEATS}
            ),
            str,
        )(),
        error_messages={
            "min_value": _("Answers per question: a whole number from 1 to 10."),
            "max_value": _("Answers per question: a whole number from 1 to 10."),
            "invalid": _("Answers per question: a whole number from 1 to 10."),
        },
    )
    mode = forms.ChoiceField(
        label=_("Mode"),
        choices=Batch.Mode.choices,
        initial=Batch.Mode.REALTIME,
        required=False,  # a client that sends none gets real time
        help_text=_(
            "Economy sends the answer calls to the provider's batch API (OpenAI, Azure "
            "OpenAI, Anthropic) at about half the price; the answers are expected within "
            "24 hours."
        ),
    )
    economy_retry = forms.ChoiceField(
        label=_("Economy: retry an expired or failed request"),
        choices=Batch.EconomyRetry.choices,
        initial=Batch.EconomyRetry.BATCH,
        required=False,  # a client that sends none gets a new provider batch
        help_text=_(
            "Economy mode only. A row whose request expires or errors at the provider is "
            "retried once: in a new provider batch (half price, up to 24 hours more), or "
            "at once in real time (at the real-time price); then it fails with the "
            "provider's reason."
        ),
    )

    def __init__(self, *args, choose_columns: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choose_columns = choose_columns
        self.needs_columns = False
        self.file_bytes = b""
        # Read at request time: which providers are enabled depends on settings/env.
        groups = model_choices()
        self.fields["ai_model"].choices = groups
        default = default_chat_settings()
        for _label, options in groups:
            if options and options[0][0].startswith(f"{default.ai_provider}{MODEL_SEPARATOR}"):
                self.fields["ai_model"].initial = options[0][0]
                break
        search = search_choices()
        self.fields["search_provider"].choices = [(key, gettext(label)) for key, label in search]
        if any(key == "local" for key, _label in search):
            self.fields["search_provider"].help_text = local_search_help()
        self.fields["search_provider"].initial = default.search_provider
        # Questions are usually asked in the language the person works in.
        language = (get_language() or "en")[:2]
        if language in Language.values:
            self.fields["page_language"].initial = language
        self.parsed: ParsedUpload | None = None

    def clean_file(self):
        """Parse the whole file; with `choose_columns`, or when no question column is
        found, read only a preview and set `needs_columns` (the view shows the chooser)."""
        upload = self.cleaned_data["file"]
        upload.name = clean_filename(upload.name or "")
        try:
            # The parser's message names the problem (and the row or column): shown
            # verbatim next to the field.
            self.file_bytes = read_upload_bytes(file=upload)
            if not self.choose_columns:
                try:
                    self.parsed = parse_upload(data=self.file_bytes, filename=upload.name)
                    return upload
                except UploadError as error:
                    if error.code != "no_question_column":
                        raise
            self.parsed = parse_upload(
                data=self.file_bytes, filename=upload.name, preview=PREVIEW_ROWS
            )
            self.needs_columns = True
        except UploadError as error:
            raise forms.ValidationError(error.message, code=error.code) from None
        return upload

    def clean_ai_model(self) -> tuple[str, str]:
        provider, _sep, model = self.cleaned_data["ai_model"].partition(MODEL_SEPARATOR)
        return provider, model

    def add_provider_error(self, error: ProviderNotConfigured) -> None:
        """A provider or model refused by the service, shown next to the field it concerns
        (the provider and its model are one select here)."""
        field = {
            "search_provider": "search_provider",
            "mode": "mode",
            "economy_retry": "economy_retry",
        }.get(error.field or "", "ai_model")
        self.add_error(field, str(error))

    def run_settings(self) -> dict:
        """The batch settings chosen, as the keyword arguments of create_batch_run,
        create_batch_from_draft and run_again (a valid form)."""
        provider, model = self.cleaned_data["ai_model"]
        return {
            "name": self.cleaned_data["name"],
            "ai_provider": provider,
            "model": model,
            "search_provider": self.cleaned_data["search_provider"],
            "page_language": self.cleaned_data["page_language"],
            "apply_overrides": self.cleaned_data["apply_overrides"],
            "judge_enabled": self.cleaned_data["judge_enabled"],
            # An empty field (a form posted without it) is one answer per question.
            "repeats": self.cleaned_data.get("repeats") or 1,
            "mode": self.cleaned_data.get("mode") or Batch.Mode.REALTIME,
            "economy_retry": self.cleaned_data.get("economy_retry") or Batch.EconomyRetry.BATCH,
        }


class RunAgainForm(BatchUploadForm):
    """ "Run again with…": the upload form's settings without a file (the rows are the
    batch's own), prefilled with the batch's settings."""

    def __init__(self, *args, batch=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["file"]
        self.fields["name"].help_text = _("Leave empty for the batch's name followed by “(again)”.")
        if batch is not None:
            self.fields["ai_model"].initial = f"{batch.ai_provider}{MODEL_SEPARATOR}{batch.model}"
            self.fields["search_provider"].initial = batch.search_provider
            self.fields["page_language"].initial = batch.page_language
            self.fields["apply_overrides"].initial = batch.apply_overrides
            self.fields["judge_enabled"].initial = batch.judge_enabled
            self.fields["repeats"].initial = batch.repeats
            self.fields["mode"].initial = batch.mode
            self.fields["economy_retry"].initial = batch.economy_retry


class RegradeForm(forms.Form):
    judge_enabled = forms.BooleanField(label=_("Use the AI judge"), required=False)


HEADER_SHOWN_CHARS = 60


def _short(header: str) -> str:
    """A header as the chooser shows it: cut to HEADER_SHOWN_CHARS characters."""
    if len(header) <= HEADER_SHOWN_CHARS:
        return header
    return header[: HEADER_SHOWN_CHARS - 1] + "…"


ROLE_FIELDS = {
    "question": _("Question"),
    "url": _("Referring URL"),
    "chat_id": _("Chat id (rows sharing it are one conversation)"),
    "expected_answer": _("Expected answer"),
    "expected_citation": _("Expected citation URL"),
    "expected_outcome": _("Expected outcome (answer type)"),
    "expected_block": _("Expected blocking (Block / Don't block)"),
}


class ColumnsForm(BatchUploadForm):
    """Step 2 of an upload: the file is kept on the server (an UploadDraft of this user);
    the user picks which column plays which role, seeing the first rows."""

    draft = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, data=None, *, owner, draft: UploadDraft | None = None, **kwargs) -> None:
        super().__init__(data, **kwargs)
        del self.fields["file"]
        if draft is None and data is not None:
            try:
                draft_id = int(data.get("draft", ""))
            except (TypeError, ValueError):
                draft_id = 0
            draft = UploadDraft.objects.live().filter(owner=owner, pk=draft_id).first()
        self.upload_draft = draft
        self.preview: ParsedUpload | None = None
        self.preview_error = ""
        if draft is not None:
            self.initial["draft"] = draft.pk
            # Parsed once when the draft was saved: a re-post never reads the file again.
            kept = upload_draft_preview(draft=draft)
            if "error" in kept:
                self.preview_error = kept["error"]
            else:
                self.preview = ParsedUpload(
                    rows=[],
                    columns=kept["columns"],
                    format=kept["format"],
                    roles=kept["roles"],
                    preview_rows=kept["rows"],
                )
        headers = self.preview.columns if self.preview else []
        # Options are column positions: a header is shown cut short, never repeated whole
        # in each of the role selects (the page stays small whatever the headers).
        choices = [("", _("— none —"))] + [
            (str(position), _short(header)) for position, header in enumerate(headers, 1)
        ]
        for role, label in ROLE_FIELDS.items():
            self.fields[role] = forms.ChoiceField(
                label=label, choices=choices, required=role == "question"
            )
            found = self.preview.roles.get(role) if self.preview else None
            if found in headers and not self.is_bound:
                self.initial[role] = str(headers.index(found) + 1)

    def clean(self):
        cleaned = super().clean()
        if self.upload_draft is None:
            raise forms.ValidationError(
                _("This upload is no longer available: choose the file again."), code="expired"
            )
        if self.preview_error:
            raise forms.ValidationError(self.preview_error, code="unreadable")
        return cleaned

    def column_choice(self) -> ColumnChoice:
        headers = self.preview.columns if self.preview else []
        chosen = {role: self.cleaned_data.get(role) or "" for role in ROLE_FIELDS}
        return ColumnChoice(
            **{role: headers[int(value) - 1] if value else "" for role, value in chosen.items()}
        )

    @cached_property
    def sample(self) -> list[list[str]]:
        """The preview's cells as the guard will send them (batches.upload_guard)."""
        if not self.preview:
            return []
        return screened_sample(self.preview.preview_rows, language=get_language() or "en")

    def role_fields(self):
        return [self[role] for role in ROLE_FIELDS]
