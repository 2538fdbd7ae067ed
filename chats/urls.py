from __future__ import annotations

from django.urls import path

from chats import views

app_name = "chats"

urlpatterns = [
    # Before <chat_id>: "prompt-overrides" has a dash; chat ids are url-safe base64 (12
    # characters), so the two never collide, but order keeps it obvious.
    path("prompt-overrides/", views.prompt_overrides, name="overrides"),
]
