from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class BatchChatConfig(AppConfig):
    """The project package as an app: system checks and project-wide commands."""

    name = "batchchat"
    verbose_name = "BatchChat"

    def ready(self) -> None:
        from batchchat import checks  # noqa: F401  (registers the checks)


class NinjaAssetsConfig(AppConfig):
    """django-ninja's templates and static files (its Swagger UI, served from here, not
    from a CDN), without importing django-ninja at start: installed as "ninja", the app
    would import the whole package (pydantic and the schemas, ~0.1 s) in every process,
    commands included. The API imports it when the URLconf is loaded. batchchat.api
    renders the docs page with these templates (LocalSwagger)."""

    name = "batchchat.ninja_assets"
    label = "ninja_assets"
    verbose_name = "django-ninja assets"
    # find_spec locates the package without running its __init__.
    path = find_spec("ninja").submodule_search_locations[0]
