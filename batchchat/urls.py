from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="batches:list", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("batches.api_urls")),
    path("settings/tokens/", include("accounts.urls")),
    path("batches/", include("batches.urls")),
    path("chats/", include("chats.urls")),
]

# JSON for /api/ paths, Django's default pages elsewhere.
handler400 = "batches.api.bad_request_handler"
handler500 = "batches.api.server_error_handler"
