from __future__ import annotations

app_name = "chats"

urlpatterns: list = []
