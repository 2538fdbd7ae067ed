"""The chats part of the HTTP API (mounted by batchchat.api): which providers this server
offers."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router
from pydantic import Field

from batchchat.api_base import CamelSchema, error_docs
from chats.services import default_chat_settings, provider_choices, search_choices


class ProviderOut(CamelSchema):
    key: str
    label: str
    models: list[str] = Field(description="The first is the default")


class SearchProviderOut(CamelSchema):
    key: str
    label: str


class ProvidersOut(CamelSchema):
    ai_providers: list[ProviderOut]
    search_providers: list[SearchProviderOut]
    default_ai_provider: str
    default_search_provider: str


router = Router()


@router.get(
    "/providers",
    response={200: ProvidersOut, **error_docs(401)},
    by_alias=True,
    tags=["providers"],
    summary="The AI and search providers enabled on this server",
    # The id it had when the route lived in batches.api: clients generated from the
    # schema keep their method name.
    operation_id="batches_api_providers",
)
def providers(request: HttpRequest):
    default = default_chat_settings()
    return ProvidersOut(
        ai_providers=[
            {"key": key, "label": label, "models": models}
            for key, label, models in provider_choices()
        ],
        search_providers=[{"key": key, "label": label} for key, label in search_choices()],
        default_ai_provider=default.ai_provider,
        default_search_provider=default.search_provider,
    )
