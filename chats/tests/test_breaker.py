"""The circuit breaker's states: closed, open after N outage failures, one probe per
interval, closed again by a success (in this process; Redis shares the same steps)."""

from __future__ import annotations

import time

import pytest

from chats.providers import breaker
from chats.services import run_on_provider_loop


@pytest.fixture
def local(settings):
    settings.REDIS_URL = ""
    settings.PROVIDER_BREAKER_FAILURES = 3
    settings.PROVIDER_BREAKER_PROBE_SECONDS = 0.2


def run(coroutine):
    return run_on_provider_loop(coroutine)


def test_breaker_opens_after_the_threshold_of_failures_in_a_row(local):
    for _ in range(2):
        run(breaker.failed("compatible", "m", "connection"))
    assert not run(breaker.is_open("compatible", "m"))
    assert run(breaker.admit("compatible", "m"))
    run(breaker.failed("compatible", "m", "connection"))
    assert run(breaker.is_open("compatible", "m"))
    shot = breaker.snapshot("compatible", "m")
    assert shot["reason"] == "connection" and shot["last_success"] is None


def test_a_success_between_failures_starts_the_count_again(local):
    for _ in range(2):
        run(breaker.failed("compatible", "m", "timeout"))
    run(breaker.succeeded("compatible", "m"))
    for _ in range(2):
        run(breaker.failed("compatible", "m", "timeout"))
    assert not run(breaker.is_open("compatible", "m"))


def test_open_breaker_admits_one_probe_per_interval_and_a_success_closes_it(local):
    run(breaker.succeeded("compatible", "m"))
    for _ in range(3):
        run(breaker.failed("compatible", "m", "server-error"))
    assert not run(breaker.admit("compatible", "m"))  # the first probe waits an interval
    deadline = time.monotonic() + 30
    while not run(breaker.admit("compatible", "m")):
        assert time.monotonic() < deadline, "no probe was admitted"
        time.sleep(0.02)
    assert not run(breaker.admit("compatible", "m"))  # one probe per interval
    run(breaker.failed("compatible", "m", "server-error"))  # the probe failed
    assert run(breaker.is_open("compatible", "m"))
    run(breaker.succeeded("compatible", "m"))
    assert not run(breaker.is_open("compatible", "m"))
    assert breaker.snapshot("compatible", "m") is None
    assert run(breaker.admit("compatible", "m"))


def test_breakers_are_per_provider_and_model(local):
    for _ in range(3):
        run(breaker.failed("compatible", "a", "connection"))
    assert run(breaker.is_open("compatible", "a"))
    assert not run(breaker.is_open("compatible", "b"))
    assert not run(breaker.is_open("openai", "a"))


def test_zero_failures_turns_the_breaker_off(local, settings):
    settings.PROVIDER_BREAKER_FAILURES = 0
    for _ in range(10):
        run(breaker.failed("compatible", "m", "connection"))
    assert run(breaker.admit("compatible", "m"))
    assert breaker.snapshot("compatible", "m") is None


@pytest.mark.redis
def test_with_redis_every_process_shares_the_breaker_and_its_probe(settings):
    """Each `breaker.reset()` below stands for another process: it has no local state,
    only what Redis holds."""
    import uuid

    import redis

    from conftest import REDIS_URL

    settings.REDIS_URL = REDIS_URL
    settings.PROVIDER_BREAKER_FAILURES = 3
    settings.PROVIDER_BREAKER_PROBE_SECONDS = 0.3
    model = f"m-{uuid.uuid4().hex[:8]}"  # keys of its own: other runs may share this Redis
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(3):
            run(breaker.failed("compatible", model, "timeout"))
            breaker.reset()  # failures counted in different processes add up
        assert run(breaker.is_open("compatible", model))
        assert breaker.snapshot("compatible", model)["reason"] == "timeout"
        assert not run(breaker.admit("compatible", model))  # the first probe waits
        deadline = time.monotonic() + 30
        while not run(breaker.admit("compatible", model)):
            assert time.monotonic() < deadline, "no probe was admitted"
            time.sleep(0.02)
        breaker.reset()
        assert not run(breaker.admit("compatible", model))  # one probe for all processes
        run(breaker.succeeded("compatible", model))
        breaker.reset()
        assert not run(breaker.is_open("compatible", model))
        assert client.get(f"batchchat:cb:compatible:{model}:ok") is not None
    finally:
        for key in client.scan_iter(f"batchchat:cb:compatible:{model}:*"):
            client.delete(key)


@pytest.mark.redis
def test_with_redis_a_success_in_one_process_clears_failures_counted_in_another(settings):
    import uuid

    import redis

    from conftest import REDIS_URL

    settings.REDIS_URL = REDIS_URL
    settings.PROVIDER_BREAKER_FAILURES = 3
    model = f"m-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(2):
            run(breaker.failed("compatible", model, "connection"))
        breaker.reset()  # another process, which reads the shared state, then succeeds
        assert not run(breaker.is_open("compatible", model))
        run(breaker.succeeded("compatible", model))
        breaker.reset()
        for _ in range(2):
            run(breaker.failed("compatible", model, "connection"))
        assert not run(breaker.is_open("compatible", model))  # 2 in a row, not 4
    finally:
        for key in client.scan_iter(f"batchchat:cb:compatible:{model}:*"):
            client.delete(key)
