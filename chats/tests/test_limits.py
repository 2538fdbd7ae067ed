"""Provider quotas, Retry-After pauses and adaptive concurrency (chats.providers.limits),
through the real OpenAI SDK against the fake server."""

from __future__ import annotations

import asyncio
import time

import pytest

from batchchat.tests.waiting import wait_until
from chats import aio
from chats.providers import get_provider, limits
from chats.providers.base import GenerationRequest, Message


@pytest.fixture
def fake(fake, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 6
    settings.PROVIDER_BACKOFF_BASE = 0.01
    settings.PROVIDER_BACKOFF_MAX = 5.0
    settings.REDIS_URL = ""
    return fake


def _request(n: int = 0) -> GenerationRequest:
    return GenerationRequest(
        system="Answer.", messages=[Message("user", f"Question {n}?")], question=f"Question {n}?"
    )


async def _many(n: int) -> list:
    provider = get_provider("compatible")
    return await asyncio.gather(*(provider.agenerate(_request(i)) for i in range(n)))


def test_quota_comes_from_the_model_first_then_the_provider(settings):
    settings.PROVIDER_RATE_LIMITS = {"openai": {"rpm": 500, "tpm": 30000}}
    settings.PROVIDER_MODEL_RATE_LIMITS = {"openai:gpt-4o": {"rpm": 100, "tpm": 0}}
    assert limits.quota_for("openai", "gpt-4o-mini") == limits.Quota(rpm=500, tpm=30000)
    assert limits.quota_for("openai", "gpt-4o") == limits.Quota(rpm=100, tpm=0)
    assert not limits.quota_for("anthropic", "claude").limited


def test_requests_per_minute_are_spread_evenly_not_sent_at_once(fake, settings):
    settings.PROVIDER_RATE_LIMITS = {"compatible": {"rpm": 1200, "tpm": 0}}  # one per 50 ms
    settings.RATE_LIMIT_BURST_SECONDS = 0.2  # four at once at most
    fake.rate_limit_rpm = 1e9  # the server only records when requests arrive

    started = time.monotonic()
    aio.run(_many(20))
    elapsed = time.monotonic() - started

    times = sorted(fake.accepted_times)
    assert len(fake.requests) == 20
    # 4 at once, then one per 50 ms: the last goes out about 16 x 50 ms after the first
    # (arrival times jitter on a busy machine: the span is checked with room to spare).
    assert elapsed >= 0.75
    assert times[-1] - times[0] >= 0.5


def test_tokens_per_minute_budget_is_corrected_by_reported_usage(fake, settings):
    settings.PROVIDER_RATE_LIMITS = {"compatible": {"rpm": 0, "tpm": 600}}  # 10 tokens / s
    settings.RATE_LIMIT_BURST_SECONDS = 0
    settings.RATE_LIMIT_OUTPUT_TOKENS = 1000  # a large estimate, corrected after the call

    events: list[tuple[str, float]] = []
    reserve, used = limits.slot._reserve, limits.slot.used

    async def watched_reserve(self):
        wait = await reserve(self)
        events.append(("wait", wait))
        return wait

    async def watched_used(self, tokens):
        events.append(("used", tokens))
        await used(self, tokens)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits.slot, "_reserve", watched_reserve)
        patch.setattr(limits.slot, "used", watched_used)
        aio.run(_many(2))

    assert len(fake.requests) == 2
    # Budgeted at ~1000 tokens the second call is told to wait ~100 s; the fake server
    # reports a few dozen tokens, and that correction is what lets it go: after it, the
    # wait it is told is what those tokens cost (a few seconds), then nothing.
    waits = [value for kind, value in events if kind == "wait"]
    assert waits[0] == 0 and max(waits) > 50  # the first went; the second was held back
    first_used = next(i for i, (kind, _value) in enumerate(events) if kind == "used")
    reported = events[first_used][1]
    assert 0 < reported < 1000
    after = [value for kind, value in events[first_used:] if kind == "wait"]
    assert after[-1] == 0 and max(after) <= reported * 60 / 600


def test_a_429_halves_calls_in_flight_and_successes_grow_them_back(fake):
    fake.latency = 0.3
    fake.fail_next(1, "429", retry_after=0.001)
    cuts: list[tuple[float, float]] = []
    throttled = limits.slot.throttled

    async def watched(self, retry_after):
        until = await throttled(self, retry_after)
        cuts.append((self.state.limit, self.state.ceiling))
        return until

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits.slot, "throttled", watched)
        aio.run(_many(16))

    assert len(fake.requests) == 17
    ((limit, ceiling),) = cuts
    assert limit == ceiling // 2  # cut to half of what was in flight
    state = next(s for _k, s in aio.cache_items("limits") if isinstance(s, limits.KeyState))
    # ... and grown back by the successes that followed (or lifted once back up).
    assert state.limit > limit
    assert state.in_flight == 0


def test_adaptive_limit_holds_callers_back_after_a_429(fake):
    fake.latency = 0.2
    fake.fail_next(1, "429", retry_after=0.001)

    async def run() -> None:
        provider = get_provider("compatible")
        first = await provider.agenerate(_request(0))  # the 429, then a success
        assert first.text
        state = next(s for _k, s in aio.cache_items("limits") if isinstance(s, limits.KeyState))
        state.limit, state.ceiling = 2, 100  # as if cut to 2 after a burst of 429s
        await asyncio.gather(*(provider.agenerate(_request(i)) for i in range(6)))

    aio.run(run())

    assert fake.max_in_flight <= 3  # two, growing to three after two successes


def test_retry_after_pauses_every_caller_on_the_key(fake, settings):
    fake.latency = 0.05
    fake.fail_next(1, "429", retry_after=0.6)
    settings.PROVIDER_BACKOFF_BASE = 0.001

    provider = get_provider("compatible")
    # The first caller gets the 429; the second starts once its pause is recorded.
    first = asyncio.run_coroutine_threadsafe(provider.agenerate(_request(0)), aio.loop())
    wait_until(
        lambda: any(
            isinstance(state, limits.KeyState) and state.paused_until
            for _key, state in aio.cache_items("limits")
        ),
        timeout=10,
        interval=0.01,
        message="the first caller's 429 paused nothing",
    )

    async def run() -> list[float]:
        started = time.monotonic()
        await provider.agenerate(_request(1))  # another caller: waits out the pause
        return [time.monotonic() - started]

    (waited,) = aio.run(run())
    first.result(timeout=30)

    assert waited >= 0.3


def test_without_quota_or_redis_a_call_does_no_budget_work(fake, monkeypatch, settings):
    settings.PROVIDER_RATE_LIMITS = {}
    settings.PROVIDER_MODEL_RATE_LIMITS = {}
    calls = {"reserve": 0, "redis": 0}
    reserve, redis = limits.slot._reserve, limits._redis

    async def counted_reserve(self):
        calls["reserve"] += 1
        return await reserve(self)

    def counted_redis():
        calls["redis"] += 1
        return redis()

    monkeypatch.setattr(limits.slot, "_reserve", counted_reserve)
    monkeypatch.setattr(limits, "_redis", counted_redis)

    aio.run(_many(20))

    assert len(fake.requests) == 20
    assert calls == {"reserve": 0, "redis": 0}


@pytest.mark.redis
def test_with_redis_the_budget_lives_in_redis(fake, settings):
    import redis

    from conftest import REDIS_URL

    settings.REDIS_URL = REDIS_URL
    settings.PROVIDER_RATE_LIMITS = {"compatible": {"rpm": 600, "tpm": 0}}  # one per 100 ms
    settings.RATE_LIMIT_BURST_SECONDS = 0.1
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("batchchat:rl:compatible:*"):
        client.delete(key)

    started = time.monotonic()
    aio.run(_many(8))
    elapsed = time.monotonic() - started

    assert len(fake.requests) == 8
    assert elapsed >= 0.6  # one per 100 ms
    # The budget is Redis's (every process on the key reads it), not this process's.
    assert list(client.scan_iter("batchchat:rl:compatible:local-model:*:rpm"))
    state = next(s for _k, s in aio.cache_items("limits") if isinstance(s, limits.KeyState))
    assert state.tat == {}
