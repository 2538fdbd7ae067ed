"""Brute force: logins (django-axes) and API tokens (accounts.throttle) are throttled per
account or token prefix and per address, with a clear message and a lock-out period."""

from __future__ import annotations

import pytest

from batches.tests.api_helpers import ApiClient, error_of

LOGIN = "/accounts/login/"


@pytest.fixture
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.API_TOKEN_FAILURE_LIMIT = 3


def log_in(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_wrong_passwords_lock_the_account_out_with_a_clear_message(client, owner, limits):
    for _ in range(2):
        assert log_in(client, "owner", "wrong").status_code == 200  # the form, with its error
    assert log_in(client, "owner", "wrong").status_code == 429  # the limit-th failure

    response = log_in(client, "owner", "pw-owner-123")  # right, but too late

    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_account_is_locked_from_another_address_too(client, owner, limits):
    for _ in range(3):
        log_in(client, "owner", "wrong", address="10.0.0.1")
    assert log_in(client, "owner", "pw-owner-123", address="10.0.0.2").status_code == 429


@pytest.mark.django_db
def test_an_address_guessing_many_accounts_is_locked_out(client, owner, other_user, limits):
    for name in ("a", "b", "c"):
        log_in(client, name, "wrong", address="10.0.0.9")
    assert log_in(client, "other", "pw-other-123", address="10.0.0.9").status_code == 429
    assert log_in(client, "other", "pw-other-123", address="10.0.0.8").status_code == 302


@pytest.mark.django_db
def test_a_successful_login_clears_the_failures(client, owner, limits):
    log_in(client, "owner", "wrong")
    log_in(client, "owner", "wrong")
    assert log_in(client, "owner", "pw-owner-123").status_code == 302
    client.logout()
    log_in(client, "owner", "wrong")
    log_in(client, "owner", "wrong")
    assert log_in(client, "owner", "pw-owner-123").status_code == 302


@pytest.mark.django_db
def test_bad_api_tokens_lock_the_address_out_with_429(owner, limits):
    api = ApiClient(owner)
    for n in range(3):
        response = api.client.get(
            "/api/batch/list", headers={"authorization": f"Bearer bct_wrong{n}"}
        )
        assert response.status_code == 401

    response = api.get("batch/list")  # a valid token from the same address

    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "too_many_attempts" and "15 minutes" in error["message"]
    assert response["Retry-After"] == str(15 * 60)
    assert api.get("batch/list", REMOTE_ADDR="10.1.1.1").status_code == 200


@pytest.mark.django_db
def test_one_token_prefix_tried_from_many_addresses_is_locked_out(owner, limits):
    api = ApiClient(owner)
    for n in range(3):
        api.client.get(
            "/api/batch/list",
            headers={"authorization": "Bearer bct_samePrefixGuess"},
            REMOTE_ADDR=f"10.2.0.{n}",
        )
    response = api.client.get(
        "/api/batch/list",
        headers={"authorization": "Bearer bct_samePrefixOther"},
        REMOTE_ADDR="10.2.1.1",
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_the_api_docs_answer_429_not_500_when_locked_out(owner, limits):
    api = ApiClient(owner)
    for n in range(3):
        api.client.get("/api/docs", headers={"authorization": f"Bearer bct_x{n}"})
    response = api.client.get("/api/docs", headers={"authorization": "Bearer bct_x9"})
    assert response.status_code == 429


# --- Behind a reverse proxy (issue 29, item 5) ----------------------------------------------

PROXY = "10.9.9.9"


@pytest.fixture
def behind_proxy(settings, limits):
    settings.TRUSTED_PROXIES = [PROXY, "fd00::/8"]


def log_in_via_proxy(client, username: str, password: str, client_address: str):
    return client.post(
        LOGIN,
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"{client_address}",
    )


@pytest.mark.django_db
def test_behind_a_trusted_proxy_one_guesser_does_not_lock_everyone_out(client, owner, behind_proxy):
    for name in ("a", "b", "c", "d"):
        log_in_via_proxy(client, name, "wrong", "203.0.113.7")
    assert log_in_via_proxy(client, "owner", "pw-owner-123", "203.0.113.8").status_code == 302
    client.logout()
    assert log_in_via_proxy(client, "owner", "pw-owner-123", "203.0.113.7").status_code == 429


@pytest.mark.django_db
def test_a_forged_forwarded_header_does_not_escape_the_lock_out(client, owner, behind_proxy):
    # The client writes addresses of its own; the proxy appends the one it saw.
    for n, name in enumerate(("a", "b", "c")):
        log_in_via_proxy(client, name, "wrong", f"198.51.100.{n}, 203.0.113.7")
    locked = log_in_via_proxy(client, "owner", "pw-owner-123", "198.51.100.99, 203.0.113.7")
    assert locked.status_code == 429


@pytest.mark.django_db
def test_the_forwarded_header_of_an_untrusted_sender_is_ignored(client, owner, behind_proxy):
    for n, name in enumerate(("a", "b", "c")):
        client.post(
            LOGIN,
            {"username": name, "password": "wrong"},
            REMOTE_ADDR="192.0.2.5",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
    response = client.post(
        LOGIN,
        {"username": "owner", "password": "pw-owner-123"},
        REMOTE_ADDR="192.0.2.5",
        HTTP_X_FORWARDED_FOR="198.51.100.200",
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_behind_a_trusted_proxy_bad_tokens_lock_out_only_their_sender(owner, behind_proxy):
    api = ApiClient(owner)
    for n in range(3):
        api.client.get(
            "/api/batch/list",
            headers={"authorization": f"Bearer bct_wrong{n}"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )
    ok = api.get("batch/list", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert ok.status_code == 200
    locked = api.get("batch/list", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert locked.status_code == 429
