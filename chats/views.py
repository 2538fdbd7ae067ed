"""Chat pages: the transcript with its follow-up box, and the prompt overrides page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from chats.forms import PromptOverrideForm
from chats.models import PromptOverride


@login_required
@require_http_methods(["GET", "POST"])
def prompt_overrides(request: HttpRequest) -> HttpResponse:
    override = PromptOverride.objects.filter(
        owner=request.user, key=PromptOverride.Key.SYSTEM
    ).first()
    if request.method == "POST":
        form = PromptOverrideForm(request.POST, instance=override)
        if form.is_valid():
            saved = form.save(commit=False)
            saved.owner = request.user
            saved.key = PromptOverride.Key.SYSTEM
            saved.save()
            messages.success(request, _("Your prompt override was saved."))
            return redirect("chats:overrides")
    else:
        form = PromptOverrideForm(instance=override)
    return render(request, "chats/overrides.html", {"form": form, "override": override})
