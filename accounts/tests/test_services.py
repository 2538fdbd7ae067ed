from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import (
    PREFIX_LENGTH,
    TokenNotFound,
    create_api_token,
    find_token,
    hash_token,
    revoke_api_token,
    user_for_token,
)

pytestmark = pytest.mark.django_db


def test_only_the_hash_of_a_new_token_is_stored(owner):
    token, raw = create_api_token(user=owner, name="  nightly export  ")

    assert raw.startswith("bct_") and len(raw) >= 40
    assert token.name == "nightly export"
    assert token.prefix == raw[:PREFIX_LENGTH]
    assert token.token_hash == hash_token(raw) != raw
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert raw not in {str(value) for value in stored.values()}


def test_each_token_is_unique(owner):
    raws = {create_api_token(user=owner, name="t")[1] for _ in range(20)}
    assert len(raws) == 20


def test_a_token_authenticates_its_user_and_nothing_else(owner, other_user):
    _token, raw = create_api_token(user=owner, name="t")
    create_api_token(user=other_user, name="t")

    assert user_for_token(raw=raw) == owner
    assert user_for_token(raw=raw + "x") is None
    assert user_for_token(raw=raw[:-1]) is None
    assert user_for_token(raw="") is None
    assert user_for_token(raw=hash_token(raw)) is None  # the stored value is no credential


def test_an_inactive_user_or_a_revoked_token_authenticates_no_one(owner):
    token, raw = create_api_token(user=owner, name="t")
    owner.is_active = False
    owner.save()
    assert user_for_token(raw=raw) is None

    owner.is_active = True
    owner.save()
    revoke_api_token(token=token)
    assert user_for_token(raw=raw) is None


def test_last_used_is_recorded_at_most_once_a_minute(owner, django_assert_num_queries):
    token, raw = create_api_token(user=owner, name="t")
    assert token.last_used_at is None

    user_for_token(raw=raw)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    with django_assert_num_queries(1):  # the lookup only, no write
        user_for_token(raw=raw)

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=5))
    user_for_token(raw=raw)
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(seconds=1)
    assert timezone.now() - token.last_used_at < timedelta(seconds=30)


def test_find_token_by_prefix_or_id_scoped_to_a_user(owner, other_user):
    token, raw = create_api_token(user=owner, name="t")

    assert find_token(key=token.prefix) == token
    assert find_token(key=f"{token.prefix}…") == token  # as the page shows it
    assert find_token(key=str(token.pk)) == token
    assert find_token(key=token.prefix, user=owner) == token
    with pytest.raises(TokenNotFound):
        find_token(key=token.prefix, user=other_user)
    with pytest.raises(TokenNotFound):
        find_token(key="bct_nothing")


def test_an_ambiguous_prefix_is_refused(owner):
    first, _ = create_api_token(user=owner, name="a")
    second, _ = create_api_token(user=owner, name="b")
    ApiToken.objects.filter(pk=second.pk).update(prefix=first.prefix)
    with pytest.raises(TokenNotFound, match="Several"):
        find_token(key=first.prefix)
