from __future__ import annotations

from django.apps import AppConfig


class BatchChatConfig(AppConfig):
    """The project package as an app: system checks and project-wide commands."""

    name = "batchchat"
    verbose_name = "BatchChat"

    def ready(self) -> None:
        from batchchat import checks  # noqa: F401  (registers the checks)
