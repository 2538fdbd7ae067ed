from __future__ import annotations

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.tokens, name="tokens"),
    path("<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
