"""The API tokens page: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import TokenCreateForm
from accounts.services import (
    TokenNotFound,
    create_api_token,
    find_token,
    revoke_api_token,
    tokens_for,
)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    new_token = None
    status = 200
    if request.method == "POST":
        form = TokenCreateForm(request.POST)
        if form.is_valid():
            _token, new_token = create_api_token(user=request.user, name=form.cleaned_data["name"])
            # Rendered, not redirected: the secret must not travel through the session or a
            # cookie (messages), and this response is the only place it is ever shown.
            form = TokenCreateForm()
            status = 201
        else:
            status = 400
    else:
        form = TokenCreateForm()
    context = {"form": form, "tokens": tokens_for(request.user), "new_token": new_token}
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = find_token(key=str(pk), user=request.user)
    except TokenNotFound:
        raise Http404(_("No such API token.")) from None
    revoke_api_token(token=token)
    messages.success(request, _("The token “%(name)s” was revoked.") % {"name": token.name})
    return redirect("accounts:tokens")


def login_locked_out(request: HttpRequest, response=None, credentials=None) -> HttpResponse:
    """django-axes' answer to a login while locked out (AXES_LOCKOUT_CALLABLE): the login
    page with the reason and how long it lasts, status 429."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = _(
        "Too many failed logins for this account or from this address. Logging in is "
        "blocked for %(minutes)s minutes after the last failed attempt; try again later, or "
        "ask an administrator to unlock it."
    ) % {"minutes": minutes}
    form = AuthenticationForm(request)
    context = {"form": form, "locked_out": message}
    return render(request, "registration/login.html", context, status=429)
