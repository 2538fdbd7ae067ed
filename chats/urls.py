from __future__ import annotations

from django.urls import path

from chats import views

app_name = "chats"

urlpatterns = [
    # Chat ids are url-safe base64 of 12 characters, so "prompt-overrides" never collides;
    # listing it first keeps that obvious.
    path("prompt-overrides/", views.prompt_overrides, name="overrides"),
    path("<str:chat_id>/", views.chat_detail, name="detail"),
    path("<str:chat_id>/transcript/", views.chat_transcript, name="transcript"),
    path("<str:chat_id>/ask/", views.chat_ask, name="ask"),
]
