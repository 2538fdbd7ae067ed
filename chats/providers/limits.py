"""Provider quotas and adaptive concurrency, shared by every call on one key.

A "key" is a provider, a model and (a hash of) the API key: what a provider counts a quota
against. Every attempt of `call_with_retries` holds a `slot` on its key, which applies:

1. Adaptive concurrency (this process). Calls in flight on the key are unlimited until a
   429 comes back; then they are cut to half of what was in flight (multiplicative
   decrease, at most once a second), and grow back by one after each run of as many
   successes as the limit (additive increase), until they reach what was asked for and
   the limit is lifted. Callers above the limit wait their turn.
2. A pause. A 429 with Retry-After pauses every caller on the key until then: in this
   process at once, and, with Redis, in every process (published on a channel each
   process listens to, so nobody pays a round trip per call for it).
3. A budget, only when a quota is set (`<PROVIDER>_RPM` / `_TPM`, or per model): requests
   per minute and tokens per minute as GCRA buckets (a request is due 60/RPM seconds after
   the previous one, with a burst of RATE_LIMIT_BURST_SECONDS of budget), so requests go
   out evenly, not a minute's worth at once. Tokens are budgeted from an estimate of the
   prompt plus RATE_LIMIT_OUTPUT_TOKENS and corrected by the usage the provider reports.
   With Redis the buckets live in Redis, updated atomically by a Lua script with Redis's
   clock, so every process and machine shares one budget; without Redis, in this process.
   Without a quota there is no budget work and no network round trip.
   Without Redis, a process that is one of N engine processes on this machine
   (`run_worker --processes N`, `run_batch --processes N`) takes quota/N
   (`share_quotas`), so that together they keep to the provider's quota.
Waiting for any of these is not an attempt: a throttled call never fails for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from chats import aio

logger = logging.getLogger(__name__)

PAUSE_CHANNEL = "batchchat:provider-pause"
DECREASE_EVERY = 1.0  # seconds: one cut per burst of 429s, not one per 429

RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > now then return tostring(pause - now) end
local wait = 0
for i = 1, 2 do
  local interval = tonumber(ARGV[(i - 1) * 3 + 1])
  if interval > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
    local w = tat - now - tonumber(ARGV[(i - 1) * 3 + 2])
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i = 1, 2 do
  local interval = tonumber(ARGV[(i - 1) * 3 + 1])
  if interval > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
    tat = tat + interval * tonumber(ARGV[(i - 1) * 3 + 3])
    redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil((tat - now + 60) * 1000))
  end
end
return '0'
"""


@dataclass(frozen=True)
class Quota:
    rpm: float = 0.0
    tpm: float = 0.0

    @property
    def limited(self) -> bool:
        return self.rpm > 0 or self.tpm > 0

    def buckets(self, tokens: int) -> list[tuple[str, float, float, float]]:
        """(name, interval, tolerance, cost) of each bucket that has a limit."""
        burst = max(float(settings.RATE_LIMIT_BURST_SECONDS), 0.0)
        out = []
        for name, per_minute, cost in (("rpm", self.rpm, 1.0), ("tpm", self.tpm, float(tokens))):
            if per_minute > 0:
                interval = 60.0 / per_minute
                # A burst of `burst` seconds of budget; at least one request goes at once.
                out.append((name, interval, max(burst - interval, 0.0), cost))
        return out


# How many engine processes on this machine share each quota when there is no Redis to
# hold one budget for all of them (share_quotas).
_quota_share = 1


def share_quotas(*, processes: int) -> None:
    """This process is one of `processes` engine processes: without REDIS_URL each one
    budgets quota / processes (with Redis they share one budget and this has no effect)."""
    global _quota_share
    _quota_share = max(int(processes), 1)


def quota_for(provider: str, model: str) -> Quota:
    values = settings.PROVIDER_MODEL_RATE_LIMITS.get(f"{provider}:{model}")
    if values is None:
        values = settings.PROVIDER_RATE_LIMITS.get(provider) or {}
    share = 1 if settings.REDIS_URL else _quota_share
    return Quota(
        rpm=float(values.get("rpm") or 0) / share, tpm=float(values.get("tpm") or 0) / share
    )


def key_for(provider: str, model: str, secrets: Sequence[str]) -> str:
    account = hashlib.sha256("\0".join(s for s in secrets if s).encode()).hexdigest()[:12]
    return f"{provider}:{model}:{account}"


def estimate_tokens(texts: Sequence[str]) -> int:
    """About four characters a token, plus the output budget."""
    return sum(len(text) for text in texts) // 4 + int(settings.RATE_LIMIT_OUTPUT_TOKENS)


class KeyState:
    """One key's state in this process; touched on the provider loop only."""

    def __init__(self) -> None:
        self.limit = math.inf  # calls in flight allowed (inf: not limited)
        self.ceiling = math.inf  # what was asked for when the limit was set
        self.in_flight = 0
        self.waiting = 0
        self.successes = 0
        self.last_decrease = 0.0
        self.paused_until = 0.0  # epoch seconds (Retry-After)
        self.throttled_until = 0.0  # epoch seconds: a caller waits for the budget until then
        self.tat: dict[str, float] = {}  # local buckets (no Redis)
        self.turn = asyncio.Condition()

    def snapshot(self) -> dict:
        return {
            "in_flight": self.in_flight,
            "limit": None if math.isinf(self.limit) else int(self.limit),
            "until": max(self.paused_until, self.throttled_until),
        }


def _state(key: str) -> KeyState:
    return aio.loop_cache(("limits", key), KeyState)


class _Shared:
    """This process's Redis client for the budgets, and its listener for pauses."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self.client = redis.asyncio.from_url(url)
        self.listener = asyncio.get_running_loop().create_task(_listen_for_pauses(url))

    def close(self) -> None:
        self.listener.cancel()


def _redis():
    """The shared Redis client on the provider loop, or None without REDIS_URL."""
    url = settings.REDIS_URL
    if not url:
        return None
    return aio.loop_cache(("limits", f"redis:{url}"), lambda: _Shared(url)).client


async def _listen_for_pauses(url: str) -> None:
    """Apply the pauses other processes publish (one connection per process)."""
    import redis.asyncio

    while True:
        try:
            client = redis.asyncio.from_url(url)
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(PAUSE_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = json.loads(message["data"])
                    state = _state(data["key"])
                    state.paused_until = max(state.paused_until, float(data["until"]))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("provider pause channel lost; listening again in 5 s", exc_info=True)
            await asyncio.sleep(5)


class slot:  # noqa: N801 - used as `async with limits.slot(...)`
    """One attempt's place on its key (see the module docstring)."""

    def __init__(self, key: str, quota: Quota, *, tokens: int, own_pause: float = 0.0) -> None:
        self.key = key
        self.quota = quota
        self.tokens = tokens
        # The pause this caller set itself after a 429: its own retry delay covers it.
        self.own_pause = own_pause
        self.state = _state(key)
        self.rate_limited = False

    async def __aenter__(self) -> slot:
        state = self.state
        if state.in_flight >= state.limit:
            state.waiting += 1
            try:
                async with state.turn:
                    await state.turn.wait_for(lambda: state.in_flight < state.limit)
            finally:
                state.waiting -= 1
        state.in_flight += 1
        try:
            await self._wait_for_budget()
        except BaseException:
            await self._leave()
            raise
        return self

    async def _wait_for_budget(self) -> None:
        state = self.state
        while True:
            wait = 0.0
            if state.paused_until > self.own_pause:
                wait = state.paused_until - time.time()
            if wait <= 0 and self.quota.limited:
                wait = await self._reserve()
            if wait <= 0:
                return
            # When this key's next call may go, as last computed (for display).
            state.throttled_until = time.time() + wait
            # A short nap at a time: a usage correction or a shorter pause elsewhere may
            # let this call go sooner than the first estimate said.
            await asyncio.sleep(min(wait, 1.0))

    async def _reserve(self) -> float:
        buckets = self.quota.buckets(self.tokens)
        redis = _redis()
        if redis is not None:
            names = {
                name: (interval, tolerance, cost) for name, interval, tolerance, cost in buckets
            }
            args: list[float] = []
            for name in ("rpm", "tpm"):
                args.extend(names.get(name, (0.0, 0.0, 0.0)))
            keys = [f"batchchat:rl:{self.key}:{name}" for name in ("rpm", "tpm", "pause")]
            return float(await redis.eval(RESERVE_SCRIPT, 3, *keys, *args))
        now = time.time()
        state = self.state
        wait = max(
            (max(state.tat.get(name, 0.0), now) - now - tolerance)
            for name, _interval, tolerance, _cost in buckets
        )
        if wait > 0:
            return wait
        for name, interval, _tolerance, cost in buckets:
            state.tat[name] = max(state.tat.get(name, 0.0), now) + interval * cost
        return 0.0

    async def used(self, tokens: int | None) -> None:
        """Correct the token budget by what the provider reported."""
        if tokens is None or self.quota.tpm <= 0 or tokens == self.tokens:
            return
        change = (tokens - self.tokens) * 60.0 / self.quota.tpm
        redis = _redis()
        if redis is not None:
            await redis.incrbyfloat(f"batchchat:rl:{self.key}:tpm", change)
        else:
            self.state.tat["tpm"] = self.state.tat.get("tpm", 0.0) + change

    async def throttled(self, retry_after: float | None) -> float:
        """The provider answered 429: cut concurrency, pause everyone until Retry-After.
        Returns the end of the pause (epoch seconds), 0 without one."""
        self.rate_limited = True
        state = self.state
        now = time.monotonic()
        if now - state.last_decrease >= DECREASE_EVERY:
            state.last_decrease = now
            if math.isinf(state.limit):
                state.ceiling = state.in_flight + state.waiting
            state.limit = max(1, math.floor(min(state.limit, state.in_flight) / 2))
            state.successes = 0
            logger.info("%s: rate limited; at most %d calls in flight", self.key, state.limit)
        if not retry_after:
            return 0.0
        until = time.time() + retry_after
        state.paused_until = max(state.paused_until, until)
        redis = _redis()
        if redis is not None:
            key = f"batchchat:rl:{self.key}:pause"
            await redis.set(key, repr(until), px=max(int(retry_after * 1000), 1))
            await redis.publish(PAUSE_CHANNEL, json.dumps({"key": self.key, "until": until}))
        return until

    async def _leave(self) -> None:
        state = self.state
        state.in_flight -= 1
        if not self.rate_limited and not math.isinf(state.limit):
            state.successes += 1
            if state.successes >= state.limit:
                state.successes = 0
                state.limit += 1
                if state.limit >= state.ceiling:
                    state.limit = math.inf  # back to what was asked for: no limit
        if state.waiting:
            async with state.turn:
                state.turn.notify_all()

    async def __aexit__(self, *exc: object) -> None:
        await self._leave()


def snapshot(provider: str, model: str) -> dict | None:
    """This process's view of the keys of `provider` + `model`: calls in flight, the
    adaptive limit (None when not limited) and until when callers wait (epoch seconds).
    Safe to read from any thread (plain values, for display)."""
    prefix = f"{provider}:{model}:"
    states = [
        state
        for key, state in aio.cache_items("limits")
        if isinstance(state, KeyState) and key.startswith(prefix)
    ]
    if not states:
        return None
    shots = [state.snapshot() for state in states]
    limits = [shot["limit"] for shot in shots if shot["limit"] is not None]
    return {
        "in_flight": sum(shot["in_flight"] for shot in shots),
        "limit": min(limits) if limits else None,
        "until": max(shot["until"] for shot in shots),
    }


def reset() -> None:
    """Forget every key's state in this process (tests)."""
    for _key, value in aio.cache_items("limits"):
        if isinstance(value, _Shared):
            aio.loop().call_soon_threadsafe(value.close)
    aio.cache_forget("limits")
