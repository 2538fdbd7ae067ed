from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ApiToken
from accounts.services import create_api_token, user_for_token

pytestmark = pytest.mark.django_db


TOKENS_URL = "/settings/tokens/"


def test_the_page_needs_a_login(client):
    response = client.get(TOKENS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_page_lists_only_my_tokens_by_prefix(owner_client, owner, other_user):
    mine, raw = create_api_token(user=owner, name="my script")
    create_api_token(user=other_user, name="their script")

    response = owner_client.get(TOKENS_URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "my script" in html and f"{mine.prefix}…" in html
    assert "their script" not in html
    assert raw not in html and mine.token_hash not in html


def test_creating_a_token_shows_it_once(owner_client, owner):
    response = owner_client.post(TOKENS_URL, {"name": "nightly export"})
    assert response.status_code == 201
    raw = response.context["new_token"]
    assert raw in response.content.decode()
    assert user_for_token(raw=raw) == owner
    assert response["Cache-Control"].startswith("max-age=0")

    again = owner_client.get(TOKENS_URL)
    assert raw not in again.content.decode()
    assert "nightly export" in again.content.decode()


def test_a_token_without_a_name_is_refused(owner_client):
    response = owner_client.post(TOKENS_URL, {"name": ""})
    assert response.status_code == 400
    assert response.context["new_token"] is None
    assert response.context["form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_revoking_my_token(owner_client, owner):
    token, raw = create_api_token(user=owner, name="old")
    response = owner_client.post(reverse("accounts:token-revoke", args=[token.pk]), follow=True)
    assert response.redirect_chain[-1][0] == TOKENS_URL
    assert "was revoked" in response.content.decode()
    assert user_for_token(raw=raw) is None


def test_another_users_token_cannot_be_revoked(owner_client, other_user):
    token, raw = create_api_token(user=other_user, name="theirs")
    response = owner_client.post(reverse("accounts:token-revoke", args=[token.pk]))
    assert response.status_code == 404
    assert user_for_token(raw=raw) == other_user


def test_revoke_needs_post(owner_client, owner):
    token, _raw = create_api_token(user=owner, name="t")
    assert owner_client.get(reverse("accounts:token-revoke", args=[token.pk])).status_code == 405
    assert ApiToken.objects.filter(pk=token.pk).exists()
