from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken
from accounts.services import user_for_token

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_only_the_token_which_then_works(owner, client):
    out, err = run("create", "owner", "--name", "cron")

    raw = out.strip()
    assert "\n" not in raw and raw.startswith("bct_")
    assert user_for_token(raw=raw) == owner
    assert "cron" in err and "cannot be shown again" in err
    response = client.get("/api/batch/list", headers={"authorization": f"Bearer {raw}"})
    assert response.status_code == 200


def test_create_for_an_unknown_user_fails():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("create", "ghost")
    assert not ApiToken.objects.exists()


def test_list_shows_prefixes_never_secrets(owner, other_user):
    raw_owner = run("create", "owner", "--name", "a")[0].strip()
    raw_other = run("create", "other", "--name", "b")[0].strip()

    out, err = run("list")
    assert raw_owner[:12] in out and raw_other[:12] in out
    assert raw_owner not in out and raw_other not in out
    assert "2 token(s)" in err
    only_other, _ = run("list", "--user", "other")
    assert raw_other[:12] in only_other and raw_owner[:12] not in only_other


def test_revoke_by_prefix_or_id(owner):
    first = run("create", "owner")[0].strip()
    second = run("create", "owner")[0].strip()

    out, _ = run("revoke", first[:12])
    assert "Revoked" in out
    assert user_for_token(raw=first) is None
    second_id = ApiToken.objects.get().pk
    run("revoke", str(second_id))
    assert user_for_token(raw=second) is None

    with pytest.raises(CommandError, match="No API token"):
        run("revoke", "bct_unknown")
