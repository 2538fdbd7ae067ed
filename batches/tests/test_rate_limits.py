"""Batches against a provider that enforces a quota: within it, nothing fails, few 429s.

The fake server answers requests beyond its requests-per-minute with 429 + Retry-After
(GCRA, as providers do); BatchChat is told the same quota (COMPATIBLE_RPM).
"""

from __future__ import annotations

import io
import time

import pytest
import redis
from django.core.management import call_command

from batches.models import Batch, BatchItem
from batches.tests.processes import TEST_BROKER_URL, child_env, start_slice_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RPM = 2400  # 40 a second


def _quota(fake_ai, settings) -> None:
    fake_ai.rate_limit_rpm = RPM
    fake_ai.rate_limit_burst = 40  # a second's worth: BatchChat's burst is half of it
    settings.PROVIDER_RATE_LIMITS = {"compatible": {"rpm": RPM, "tpm": 0}}
    settings.RATE_LIMIT_BURST_SECONDS = 0.5


def _steady_rate(times: list[float], burst: int) -> float:
    """Requests per second accepted after the first burst."""
    times = sorted(times)
    return (len(times) - 1 - burst) / (times[-1] - times[0])


def test_run_batch_at_high_concurrency_stays_within_the_quota(fake_ai, settings, tmp_path):
    _quota(fake_ai, settings)
    settings.REDIS_URL = ""
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "question\n" + "".join(f"Question {i}?\n" for i in range(200)), encoding="utf-8"
    )
    out = io.StringIO()

    call_command(
        "run_batch",
        str(questions),
        "--provider=compatible",
        "--search=none",
        "--concurrency=64",
        f"--out={tmp_path / 'results.csv'}",
        stdout=out,
        stderr=io.StringIO(),
    )

    batch = Batch.objects.latest("pk")
    assert (batch.status, batch.processed_items) == (Batch.Status.COMPLETED, 200)
    requests = len(fake_ai.requests)
    assert fake_ai.rate_limited <= 0.05 * requests, (fake_ai.rate_limited, requests)
    assert _steady_rate(fake_ai.accepted_times, burst=40) <= RPM / 60 * 1.05
    assert batch.throttle == {}  # cleared when the slice ended


@pytest.mark.postgres
@pytest.mark.redis
def test_two_processes_share_one_budget_through_redis(fake_ai, settings, make_batch):
    _quota(fake_ai, settings)
    client = redis.Redis.from_url(TEST_BROKER_URL)
    for key in client.scan_iter("batchchat:rl:*"):
        client.delete(key)
    batches = [make_batch(150), make_batch(150)]
    env = child_env(
        fake_ai,
        REDIS_URL=TEST_BROKER_URL,
        COMPATIBLE_RPM=RPM,
        RATE_LIMIT_BURST_SECONDS=0.5,
        PROVIDER_MAX_ATTEMPTS=5,
    )

    procs = [
        start_slice_process(batch_id=batch.pk, seconds=120, concurrency=32, env=env)
        for batch in batches
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], outputs
    for batch in batches:
        batch.refresh_from_db()
        assert batch.status == Batch.Status.COMPLETED
        assert not batch.items.exclude(status=BatchItem.Status.DONE).exists()
    requests = len(fake_ai.requests)
    assert fake_ai.rate_limited <= 0.05 * requests, (fake_ai.rate_limited, requests)
    # Two processes, one budget: what the server accepted stays at its limit.
    rate = _steady_rate(fake_ai.accepted_times, burst=40)
    assert rate <= RPM / 60 * 1.05, rate


def test_a_throttled_batch_says_so(fake_ai, settings, make_batch):
    settings.PROVIDER_RATE_LIMITS = {"compatible": {"rpm": 30, "tpm": 0}}  # one per 2 s
    settings.RATE_LIMIT_BURST_SECONDS = 0
    settings.REDIS_URL = ""
    batch = make_batch(3)
    seen: list[dict] = []

    def watch(done: int, failed: int) -> None:
        seen.append(Batch.objects.values_list("throttle", flat=True).get(pk=batch.pk))

    from batches.engine import process_for_duration

    started = time.monotonic()
    result = process_for_duration(batch_id=batch.pk, seconds=60, concurrency=3, on_progress=watch)

    assert result.done == 3
    assert time.monotonic() - started >= 3.5  # one request every 2 s
    waiting = [t for t in seen if t.get("until")]
    assert waiting, seen
    assert waiting[0]["concurrency"] == 3
    batch.refresh_from_db()
    assert batch.throttle == {}
