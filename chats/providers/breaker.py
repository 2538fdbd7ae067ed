"""A circuit breaker per provider and model: an outage pauses calls instead of failing them.

After PROVIDER_BREAKER_FAILURES consecutive outage failures (connection refused or
dropped, timeouts, 5xx: not 429, not 4xx) on one provider + model, the breaker opens:
no call starts on that key except one probe every PROVIDER_BREAKER_PROBE_SECONDS. The
first call that succeeds closes it. A call refused by an open breaker raises
`ProviderUnavailable` at once, without a network call, so a batch row gives its row back
(pending, its attempt not counted) rather than failing.

States: closed (failures counted), open (no call but the probe), and the probe itself
(one caller admitted per interval, in every process).

With Redis (REDIS_URL) the state is shared by every process and machine: the failure
count (INCR), the open flag (since when, why), the time of the last success and the
probe's turn (SET NX with the interval as its expiry) live in Redis; each process
re-reads them at most once a second (REFRESH_SECONDS), so a closed breaker costs no
round trip per call, and a success clears failures another process counted once this
process has read them. Without Redis the breaker is this process's.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from chats import aio

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0  # how stale this process's copy of the shared state may be
KEY_TTL_SECONDS = 24 * 3600  # shared keys of a provider nobody calls any more expire
# The kinds of outage failure (`reason`), as log lines and error messages say them.
REASONS = {
    "connection": "connection refused or dropped",
    "timeout": "timeouts",
    "server-error": "5xx server errors",
}


def threshold() -> int:
    """Consecutive outage failures that open the breaker; 0 turns the breaker off."""
    return max(0, int(settings.PROVIDER_BREAKER_FAILURES or 0))


def probe_seconds() -> float:
    return max(0.1, float(settings.PROVIDER_BREAKER_PROBE_SECONDS))


@dataclass
class BreakerState:
    """One provider + model's breaker in this process (touched on the provider loop;
    plain values, so other threads may read them for display)."""

    failures: int = 0
    open_since: float = 0.0  # epoch seconds; 0 when closed
    reason: str = ""  # the last outage failure's kind: a key of REASONS
    last_success: float = 0.0  # epoch seconds; 0 when none seen
    next_probe: float = 0.0  # epoch seconds: the probe's turn (without Redis)
    refreshed: float = 0.0  # monotonic: when the shared state was last read
    shared_failures: int = 0  # the shared failure count, as last read (with Redis)

    @property
    def is_open(self) -> bool:
        return self.open_since > 0


def _key(provider: str, model: str) -> str:
    return f"{provider}:{model}"


def _state(provider: str, model: str) -> BreakerState:
    return aio.loop_cache(("breaker", _key(provider, model)), BreakerState)


def _redis():
    """The quota module's Redis client (one connection pool per process for both), or
    None without REDIS_URL."""
    if not settings.REDIS_URL:
        return None
    from chats.providers.limits import _redis as shared_client

    return shared_client()


def _redis_key(provider: str, model: str, part: str) -> str:
    return f"batchchat:cb:{_key(provider, model)}:{part}"


async def _refresh(provider: str, model: str, state: BreakerState, *, force: bool = False) -> None:
    """Read the shared state when this process's copy is older than REFRESH_SECONDS."""
    redis = _redis()
    now = time.monotonic()
    if redis is None or (not force and now - state.refreshed < REFRESH_SECONDS):
        return
    state.refreshed = now
    opened, last_success, failures = await redis.mget(
        _redis_key(provider, model, "open"),
        _redis_key(provider, model, "ok"),
        _redis_key(provider, model, "failures"),
    )
    # Failures other processes counted: this process's next success clears them too.
    state.shared_failures = int(failures or 0)
    if opened:
        data = json.loads(opened)
        state.open_since = float(data["since"])
        state.reason = str(data.get("reason", ""))
    else:
        state.open_since = 0.0
    if last_success:
        state.last_success = max(state.last_success, float(last_success))


async def admit(provider: str, model: str) -> bool:
    """Whether a call may go now: the breaker is closed, or open and this caller takes
    the probe's turn (one per PROVIDER_BREAKER_PROBE_SECONDS in every process)."""
    if not threshold():
        return True
    state = _state(provider, model)
    await _refresh(provider, model, state)
    if not state.is_open:
        return True
    redis = _redis()
    if redis is not None:
        return bool(
            await redis.set(
                _redis_key(provider, model, "probe"),
                "1",
                nx=True,
                px=max(int(probe_seconds() * 1000), 1),
            )
        )
    now = time.time()
    if now < state.next_probe:
        return False
    state.next_probe = now + probe_seconds()
    return True


async def is_open(provider: str, model: str) -> bool:
    """Whether the breaker is open (re-read from Redis at most once a second)."""
    if not threshold():
        return False
    state = _state(provider, model)
    await _refresh(provider, model, state)
    return state.is_open


async def failed(provider: str, model: str, reason: str) -> None:
    """An outage failure on this key (`reason`: "connection", "timeout" or
    "server-error"): count it; open at the threshold."""
    limit = threshold()
    if not limit:
        return
    state = _state(provider, model)
    state.failures += 1
    state.reason = reason
    redis = _redis()
    count = state.failures
    if redis is not None:
        failures_key = _redis_key(provider, model, "failures")
        count = int(await redis.incr(failures_key))
        await redis.expire(failures_key, KEY_TTL_SECONDS)
    if count < limit or state.is_open:
        return
    now = time.time()
    if redis is not None:
        data = json.dumps({"since": now, "reason": reason})
        await redis.set(_redis_key(provider, model, "open"), data, nx=True, ex=KEY_TTL_SECONDS)
        # The first probe comes one interval after opening, as without Redis.
        await redis.set(
            _redis_key(provider, model, "probe"), "1", nx=True, px=int(probe_seconds() * 1000)
        )
        await _refresh(provider, model, state, force=True)
    else:
        state.open_since = now
        state.next_probe = now + probe_seconds()
    logger.warning(
        "%s: the provider does not answer (%d failures in a row: %s); calls pause, "
        "probing every %g s",
        _key(provider, model),
        count,
        REASONS.get(reason, reason),
        probe_seconds(),
    )


async def succeeded(provider: str, model: str) -> None:
    """A call answered: the breaker closes and the failure count starts again. Costs a
    Redis round trip only when there was something to clear."""
    if not threshold():
        return
    state = _state(provider, model)
    now = time.time()
    state.last_success = now
    if not (state.failures or state.shared_failures or state.is_open):
        return
    was_open = state.is_open
    state.failures = state.shared_failures = 0
    state.open_since = 0.0
    state.next_probe = 0.0
    redis = _redis()
    if redis is not None:
        await redis.delete(
            _redis_key(provider, model, "failures"),
            _redis_key(provider, model, "open"),
            _redis_key(provider, model, "probe"),
        )
        await redis.set(_redis_key(provider, model, "ok"), repr(now), ex=KEY_TTL_SECONDS)
    if was_open:
        logger.warning("%s: the provider answers again; calls resume", _key(provider, model))


def snapshot(provider: str, model: str) -> dict | None:
    """This process's view of the breaker when it is open: since when, why, and the last
    success seen (epoch seconds, None when none); None when closed. Any thread."""
    for key, state in aio.cache_items("breaker"):
        if key == _key(provider, model) and isinstance(state, BreakerState) and state.is_open:
            return {
                "since": round(state.open_since, 1),
                "reason": state.reason,
                "last_success": round(state.last_success, 1) if state.last_success else None,
            }
    return None


def reset() -> None:
    """Forget every breaker in this process (tests)."""
    aio.cache_forget("breaker")
