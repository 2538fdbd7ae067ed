"""GET /api/providers."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_providers_lists_the_enabled_ones(api):
    body = api.get("providers").json()
    keys = [p["key"] for p in body["aiProviders"]]
    assert keys[0] == "extractive"
    assert body["aiProviders"][0]["models"] == ["extractive"]
    assert "none" in [p["key"] for p in body["searchProviders"]]
