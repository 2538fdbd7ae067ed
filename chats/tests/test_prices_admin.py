"""Prices edited in the admin (chats.models.ModelPrice) win over the shipped table."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chats.models import ModelPrice
from chats.providers.prices import price_for

pytestmark = pytest.mark.django_db


def test_staff_add_a_price_in_the_admin_and_the_estimate_uses_it(client, staff_user):
    client.force_login(staff_user)
    assert client.get(reverse("admin:chats_modelprice_changelist")).status_code == 200
    response = client.post(
        reverse("admin:chats_modelprice_add"),
        {
            "provider": "anthropic",
            "model": "",
            "input_per_million": "3",
            "output_per_million": "15",
            "batch_discount": "0.5",
            "date": "2026-12-01",
            "source": "our contract",
        },
    )
    assert response.status_code == 302, response.content
    assert ModelPrice.objects.count() == 1
    # A provider-wide admin price covers a model the shipped table does not know.
    price = price_for("anthropic", "claude-unlisted-9")
    assert (price.input, price.output, price.origin, price.model) == (3.0, 15.0, "admin", "*")
