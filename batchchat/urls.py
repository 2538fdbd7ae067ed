from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from batchchat import ops
from chats import views as chat_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="batches:list", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("metrics", ops.metrics, name="metrics"),
    # Login, logout and password change; no password reset: it needs an e-mail set-up
    # this app does not have (an administrator resets passwords in the admin).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("batchchat.api_urls")),
    path("settings/tokens/", include("accounts.urls")),
    path("batches/", include("batches.urls")),
    path("", include("evaluation.urls")),  # /batches/<id>/… evaluation actions, /sets/
    path("", include("evaluation.review_urls")),
    path("chats/", include("chats.urls")),
    # The local search index's documents, where their citations point (chats.documents).
    path("docs/", chat_views.document, name="document-index"),
    path("docs/<path:path>", chat_views.document, name="document"),
    path("favicon.ico", lambda request: redirect(static("favicon.svg"), permanent=True)),
]

# JSON for /api/ paths, Django's default pages elsewhere.
handler400 = "batchchat.api.bad_request_handler"
handler500 = "batchchat.api.server_error_handler"
