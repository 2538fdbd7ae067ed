"""Engine processes (batches.procs): `run_worker --processes N` and `run_batch --processes N`
split the work between spawned children that share the batch through the row leases; a
child killed with SIGKILL loses and duplicates no row, the worker's parent starts another,
and SIGTERM stops them all with the rows in flight finished."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter

import pytest

from batchchat.tests.waiting import wait_until
from batches import services
from batches.models import Batch, BatchItem, WorkerHeartbeat
from batches.procs import split
from batches.tests.assertions import (
    assert_counters_match_recount,
    assert_one_interaction_per_done_item,
)
from batches.tests.processes import ROOT, child_env
from chats.providers import limits

QUESTION = re.compile(r"Question (\d+)\?")


def requests_per_row(fake_ai) -> Counter:
    """How many provider calls the fake server saw for each row (by its question)."""
    counts: Counter = Counter()
    for request in fake_ai.requests:
        found = QUESTION.findall(json.dumps(request.body.get("messages", "")))
        if found:
            counts[int(found[-1])] += 1
    return counts


def test_split_shares_concurrency_evenly():
    assert split(256, 2) == [128, 128]
    assert split(7, 3) == [3, 2, 2]
    assert split(2, 4) == [1, 1]  # never a process with nothing to do
    assert split(5, 1) == [5]


def test_without_redis_each_process_budgets_its_share_of_the_quota(settings):
    settings.PROVIDER_RATE_LIMITS = {"openai": {"rpm": 600, "tpm": 90_000}}
    settings.PROVIDER_MODEL_RATE_LIMITS = {}
    settings.REDIS_URL = ""
    try:
        limits.share_quotas(processes=3)
        assert limits.quota_for("openai", "gpt-4o") == limits.Quota(rpm=200, tpm=30_000)
        # With Redis the processes share one budget: each asks for the whole quota.
        settings.REDIS_URL = "redis://127.0.0.1:6379/0"
        assert limits.quota_for("openai", "gpt-4o") == limits.Quota(rpm=600, tpm=90_000)
    finally:
        limits.share_quotas(processes=1)
    settings.REDIS_URL = ""
    assert limits.quota_for("openai", "gpt-4o") == limits.Quota(rpm=600, tpm=90_000)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    """Kill the command and its children (its own process group: start_new_session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate(timeout=30)


def _engine_pids(parent_pid: int) -> set[int]:
    return set(
        WorkerHeartbeat.objects.exclude(pid=parent_pid).values_list("pid", flat=True).distinct()
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_child_killed_mid_run_is_replaced_and_no_row_is_lost_or_answered_twice(
    fake_ai, make_batch
):
    fake_ai.latency = 0.2
    batch = services.start_batch(batch=make_batch(120))
    env = child_env(
        fake_ai,
        BATCH_LEASE_SECONDS=2,
        WORKER_HEARTBEAT_SECONDS=0.3,
        WORKER_POLL_SECONDS=0.2,
        WORKER_SLICE_SECONDS=600,
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--processes", "2", "--concurrency", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Both children answer rows (each has its heartbeat row, with its pid).
        wait_until(
            lambda: (
                proc.poll() is None
                and len(_engine_pids(proc.pid)) == 2
                and batch.items.filter(status=BatchItem.Status.DONE).count() >= 8
            ),
            timeout=90,
            message="the two engine processes did not answer rows",
        )
        victim = next(
            iter(
                WorkerHeartbeat.objects.filter(current_batch_id=batch.pk).values_list(
                    "pid", flat=True
                )
            )
        )
        os.kill(victim, signal.SIGKILL)  # no cleanup at all
        # What it may have asked without recording: rows still leased (well before the
        # leases end, so nobody has taken them over yet).
        leased = set(
            batch.items.filter(status=BatchItem.Status.RUNNING).values_list("position", flat=True)
        )

        # The parent starts another child; the batch completes once the dead one's leases end.
        wait_until(
            lambda: (
                proc.poll() is None
                and Batch.objects.get(pk=batch.pk).status == Batch.Status.COMPLETED
            ),
            timeout=120,
            interval=0.2,
            message="the batch was not completed after a child was killed",
        )
        wait_until(
            lambda: len(_engine_pids(proc.pid) - {victim}) == 2,
            timeout=60,
            message="the parent did not start another child",
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            _stop(proc)
    assert proc.returncode == 0, err
    assert "starting another" in out

    batch.refresh_from_db()
    assert batch.processed_items == 120 and batch.failed_items == 0
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    # Every row was asked; only rows the killed child held (asked, maybe answered, not yet
    # recorded) were asked again, and none was recorded twice (above).
    calls = requests_per_row(fake_ai)
    assert sorted(calls) == list(range(120))
    asked_again = {row for row, n in calls.items() if n > 1}
    assert asked_again <= leased and max(calls.values()) <= 2
    # The parent removed the killed child's heartbeat; the others removed their own.
    assert not WorkerHeartbeat.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_to_the_worker_parent_stops_every_child_with_rows_in_flight_finished(
    fake_ai, make_batch
):
    fake_ai.latency = 0.3
    batch = services.start_batch(batch=make_batch(400))
    env = child_env(fake_ai, WORKER_SLICE_SECONDS=600, WORKER_HEARTBEAT_SECONDS=0.3)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--processes", "2", "--concurrency", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: (
                proc.poll() is None
                and len(_engine_pids(proc.pid)) == 2
                and batch.items.filter(status=BatchItem.Status.DONE).count() >= 4
            ),
            timeout=90,
            message="the two engine processes did not answer rows",
        )
        children = _engine_pids(proc.pid)
        proc.send_signal(signal.SIGTERM)  # the parent only, as `kill PID` does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            _stop(proc)

    assert proc.returncode == 0, err
    assert out.count("stopped after") == 2  # each child's closing line
    for pid in children:
        assert not _alive(pid)
    batch.refresh_from_db()
    assert not batch.items.filter(status=BatchItem.Status.RUNNING).exists()
    assert batch.status == Batch.Status.PROCESSING and batch.remaining > 0
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert not WorkerHeartbeat.objects.exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_batch_with_two_processes_answers_each_row_once_and_writes_one_file(fake_ai, tmp_path):
    fake_ai.latency = 0.05
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "question\n" + "".join(f"Question {i}?\n" for i in range(60)), encoding="utf-8"
    )
    out = tmp_path / "results.csv"
    done = subprocess.run(
        [
            sys.executable, "manage.py", "run_batch", str(questions), "--provider",
            "compatible", "--search", "none", "--concurrency", "8", "--processes", "2",
            "--out", str(out),
        ],
        cwd=ROOT,
        env=child_env(fake_ai),
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "2 processes" in done.stderr  # said on the progress line
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.COMPLETED and batch.processed_items == 60
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert requests_per_row(fake_ai) == Counter({row: 1 for row in range(60)})
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == 61
    assert sorted(p.name for p in tmp_path.iterdir()) == ["questions.csv", "results.csv"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_every_run_batch_process_and_writes_the_results_so_far(fake_ai, tmp_path):
    fake_ai.latency = 0.3
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "question\n" + "".join(f"Question {i}?\n" for i in range(400)), encoding="utf-8"
    )
    out = tmp_path / "results.csv"
    proc = subprocess.Popen(
        [
            sys.executable, "manage.py", "run_batch", str(questions), "--provider",
            "compatible", "--search", "none", "--concurrency", "4", "--processes", "2",
            "--out", str(out),
        ],
        cwd=ROOT,
        env=child_env(fake_ai),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: (
                proc.poll() is None
                and BatchItem.objects.filter(status=BatchItem.Status.DONE).count() >= 8
            ),
            timeout=90,
            message="run_batch answered no rows",
        )
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole group
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            _stop(proc)

    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    batch = Batch.objects.get()
    # Rows in flight were finished and recorded, the rest given back; the file has them.
    assert not batch.items.filter(status=BatchItem.Status.RUNNING).exists()
    assert 0 < batch.processed_items < 400
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == 401


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_engine_processes_stop_when_the_worker_parent_is_killed_outright(fake_ai):
    env = child_env(fake_ai, WORKER_HEARTBEAT_SECONDS=0.3, WORKER_POLL_SECONDS=0.2)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--processes", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: len(_engine_pids(proc.pid)) == 2,
            timeout=90,
            message="the engine processes did not start",
        )
        children = _engine_pids(proc.pid)
        proc.kill()  # SIGKILL to the parent only: it cannot tell its children anything
        proc.wait(timeout=10)
        # They notice, stop like on SIGTERM and remove their heartbeats.
        wait_until(
            lambda: not WorkerHeartbeat.objects.exists() and not any(map(_alive, children)),
            timeout=60,
            message="the engine processes outlived their parent",
        )
    finally:
        _stop(proc)
