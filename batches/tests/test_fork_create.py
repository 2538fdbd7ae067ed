"""run_batch creates a new batch in a forked process while it loads the engine
(batches.cli.running.in_fork): what the child returns or raises reaches the command, its
output is written once, and the command's results are those of a run without the fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from django.core.management import CommandError

from batches.cli.running import in_fork
from batches.models import Batch
from batches.tests.processes import ROOT, child_env
from batches.tests.test_run_batch import QUESTIONS, read_csv

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="os.fork")


def test_the_work_runs_in_another_process_beside_meanwhile():
    ran = []

    child_pid = in_fork(os.getpid, meanwhile=lambda: ran.append(os.getpid()))

    assert ran == [os.getpid()]
    assert child_pid != os.getpid()


def test_a_command_error_in_the_child_is_raised_with_its_message_and_code():
    def work():
        raise CommandError("bad.csv: no question column", returncode=3)

    with pytest.raises(CommandError) as failure:
        in_fork(work, meanwhile=lambda: None)

    assert str(failure.value) == "bad.csv: no question column"
    assert failure.value.returncode == 3


def test_a_crash_in_the_child_is_raised_with_its_traceback():
    def work():
        return {}["missing"]

    with pytest.raises(RuntimeError, match="KeyError: 'missing'"):
        in_fork(work, meanwhile=lambda: None)


def test_a_child_killed_before_its_answer_says_so():
    def work():
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(CommandError, match="signal 9"):
        in_fork(work, meanwhile=lambda: None)


def test_the_child_is_waited_for_when_meanwhile_fails():
    def meanwhile():
        raise ImportError("no SDK")

    with pytest.raises(ImportError):
        in_fork(os.getpid, meanwhile=meanwhile)
    # No child left behind (waited for): there is none to wait for.
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def script_lines(script: str, fake_ai) -> list[str]:
    """What a Python script run in a process of its own (Django set up) prints."""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=child_env(fake_ai),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


CAN_FORK = """
import io, sys, threading, django
django.setup()
from django.db import transaction
from batches.cli.running import can_fork
print("shell", can_fork(sys.stdout, sys.stderr))
print("string output", can_fork(io.StringIO()))
with transaction.atomic():
    print("in a transaction", can_fork(sys.stdout))
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
print("with a thread", can_fork(sys.stdout))
stop.set()
"""


def test_a_command_run_from_the_shell_may_fork_and_a_test_or_a_threaded_process_not(fake_ai):
    assert script_lines(CAN_FORK, fake_ai) == [
        "shell True",
        "string output False",
        "in a transaction False",
        "with a thread False",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_command_from_the_shell_creates_in_a_fork_and_answers_every_row(fake_ai, tmp_path):
    questions = tmp_path / "questions.csv"
    questions.write_text(QUESTIONS, encoding="utf-8")
    out_path = tmp_path / "results.csv"

    done = subprocess.run(
        [sys.executable, "manage.py", "run_batch", str(questions), "--provider=compatible",
         "--search=none", "--processes=1", f"--out={out_path}"],
        cwd=ROOT, env=child_env(fake_ai), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    batch = Batch.objects.get()
    assert (batch.status, batch.processed_items) == (Batch.Status.COMPLETED, 3)
    # The child's lines (creation, estimate) once each, then the parent's.
    assert done.stdout.count(f"Batch {batch.pk} created from questions.csv: 3 rows") == 1
    assert done.stdout.count("Estimate: 3 provider calls") == 1
    assert done.stdout.index("Estimate:") < done.stdout.index(f"Batch {batch.pk} (questions.csv)")
    assert "Every row was answered." in done.stdout
    assert [row["status"] for row in read_csv(out_path)] == ["done"] * 3
    assert len(fake_ai.requests) == 3


@pytest.mark.django_db(transaction=True)
def test_the_command_from_the_shell_reports_a_bad_file_once_and_creates_nothing(fake_ai, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"title,url\nNo question column here,https://example.ca\n")

    done = subprocess.run(
        [sys.executable, "manage.py", "run_batch", str(bad), "--provider=compatible",
         "--search=none"],
        cwd=ROOT, env=child_env(fake_ai), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stderr.count("CommandError:") == 1
    assert "question" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert not Batch.objects.exists()
    assert not fake_ai.requests


GC_SCRIPT = """
import gc, io, sys, django
django.setup()
from batches.cli.running import pause_gc, settle_gc
print("test output", pause_gc(io.StringIO()), gc.isenabled())
paused = pause_gc(sys.stdout)
print("own process", paused, gc.isenabled())
settle_gc(paused)
print("settled", gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_collector_pauses_during_start_up_of_its_own_process_only(fake_ai):
    assert script_lines(GC_SCRIPT, fake_ai) == [
        "test output False True",
        "own process True False",
        "settled True True",
    ]
