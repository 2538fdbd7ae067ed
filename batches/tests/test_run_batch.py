"""`manage.py run_batch` end to end: real parser, real engine, the fake provider server."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from openpyxl import load_workbook

from batchchat.tests.waiting import wait_until
from batches import engine, services
from batches.cli.console import Progress
from batches.errors import UploadError
from batches.models import Batch, BatchItem
from batches.tests.processes import ROOT, child_env
from batches.uploads import parse_upload

# The engine answers rows in worker threads with their own connections.
pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = (
    "question,url,team\n"
    "Où est le formulaire ?,https://example.ca/fr,A\n"
    '"=1+1 est-il une formule ?",,B\n'
    "How do I cancel a batch?,https://example.ca/en,C\n"
)


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("run_batch", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def read_csv(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


@pytest.fixture
def questions(tmp_path) -> Path:
    path = tmp_path / "questions.csv"
    path.write_text(QUESTIONS, encoding="utf-8")
    return path


def test_answers_a_csv_offline_and_writes_the_results(questions, tmp_path, owner):
    out_path = tmp_path / "results.csv"

    stdout, stderr = run(
        str(questions),
        "--provider=extractive",
        "--search=none",
        "--user=owner",
        f"--out={out_path}",
    )

    batch = Batch.objects.get()
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (3, 0)
    assert batch.uploader == owner
    assert batch.name == "questions.csv"
    rows = read_csv(out_path)
    assert [row["row"] for row in rows] == ["1", "2", "3"]
    assert [row["status"] for row in rows] == ["done"] * 3
    # Written while the rows were answered, then renamed: no part of it is left behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["questions.csv", "results.csv"]
    assert rows[0]["question"] == "Où est le formulaire ?"
    assert rows[0]["input.team"] == "A"
    assert rows[1]["question"] == "'=1+1 est-il une formule ?"
    assert all(row["answer"] and row["interaction_id"] for row in rows)
    assert f"Batch {batch.pk} created from questions.csv: 3 rows" in stdout
    assert "3 done, 0 failed" in stdout
    assert f"Results: {out_path}" in stdout
    assert "3/3 rows (100%)  0 failed" in stderr
    assert "rows/s" in stderr


@pytest.mark.parametrize("suffix", ["json", "xlsx"])
def test_out_extension_picks_the_format(questions, tmp_path, suffix):
    out_path = tmp_path / f"answers.{suffix}"

    run(str(questions), "--provider=extractive", "--search=none", f"--out={out_path}")

    if suffix == "json":
        records = json.loads(out_path.read_text(encoding="utf-8"))
        questions_out = [record["question"] for record in records]
    else:
        sheet = load_workbook(out_path)["Results"]
        header, *rows = sheet.iter_rows(values_only=True)
        questions_out = [row[header.index("question")] for row in rows]
    assert questions_out[0] == "Où est le formulaire ?"
    assert len(questions_out) == 3


def test_default_results_file_is_named_after_the_batch(questions, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    run(str(questions), "--provider=extractive", "--search=none")

    batch = Batch.objects.get()
    assert len(read_csv(tmp_path / f"results-{batch.pk}.csv")) == 3


def test_bad_file_fails_with_the_parsers_message_and_creates_nothing(tmp_path):
    path = tmp_path / "bad.csv"
    data = b"title,url\nNo question column here,https://example.ca\n"
    path.write_bytes(data)
    with pytest.raises(UploadError) as parsed:
        parse_upload(data=data, filename="bad.csv")

    with pytest.raises(CommandError) as failure:
        run(str(path), "--provider=extractive", "--search=none")

    assert str(failure.value) == parsed.value.message
    assert failure.value.returncode == 1
    assert not Batch.objects.exists()


def test_unconfigured_provider_fails_with_a_clear_message(questions):
    with pytest.raises(CommandError, match="nope"):
        run(str(questions), "--provider=nope", "--search=none")
    assert not Batch.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Give the CSV or XLSX file"),
        (["missing.csv"], "missing.csv: no such file"),
        (["q.csv", "--resume=1"], "not both"),
        (["--resume=999999"], "There is no batch 999999"),
        (["q.csv", "--out=results.pdf"], "use .csv, .json or .xlsx"),
        (["q.csv", "--user=nobody"], "no such user"),
    ],
)
def test_usage_errors_say_what_to_do(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.csv").write_text(QUESTIONS, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        run(*args, "--provider=extractive", "--search=none")


def test_failed_rows_give_a_nonzero_exit_and_still_write_the_results(fake_ai, questions, tmp_path):
    out_path = tmp_path / "results.csv"
    fake_ai.fail_next(1, "400")

    with pytest.raises(CommandError) as failure:
        run(
            str(questions),
            "--provider=compatible",
            "--model=local-model",
            "--search=none",
            "--concurrency=1",
            f"--out={out_path}",
        )

    batch = Batch.objects.get()
    assert failure.value.returncode == 1
    assert "1 rows failed" in str(failure.value)
    assert f"--resume {batch.pk} --retry-failed" in str(failure.value)
    rows = read_csv(out_path)
    assert sorted(row["status"] for row in rows) == ["done", "done", "failed"]
    failed = next(row for row in rows if row["status"] == "failed")
    assert "400" in failed["error"]
    assert failed["answer"] == ""


def test_resume_continues_where_the_batch_stopped(fake_ai, make_batch, tmp_path):
    batch = make_batch(8)
    services.start_batch(batch=batch)
    fake_ai.latency = 0.25
    # Each row takes >= 0.25 s, so a 0.6 s slice with one worker leaves rows pending.
    first = engine.process_for_duration(batch_id=batch.pk, seconds=0.6, concurrency=1)
    assert first.done >= 1 and first.remaining >= 4
    fake_ai.latency = 0.0
    out_path = tmp_path / "results.json"

    stdout, _ = run(f"--resume={batch.pk}", f"--out={out_path}")

    assert f"Resuming batch {batch.pk}" in stdout
    assert f"{first.remaining} of 8 rows left" in stdout
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == 8
    # Every row asked once: the rows answered before the resume were not asked again.
    assert len(fake_ai.requests) == 8
    assert len(json.loads(out_path.read_text(encoding="utf-8"))) == 8


def test_resume_with_retry_failed_runs_the_failed_rows_again(fake_ai, make_batch, tmp_path):
    batch = make_batch(3)
    services.start_batch(batch=batch)
    fake_ai.fail_next(1, "400")
    engine.process_for_duration(batch_id=batch.pk, seconds=10, concurrency=1)
    batch.refresh_from_db()
    assert batch.failed_items == 1

    with pytest.raises(CommandError, match="already completed|rows failed"):
        run(f"--resume={batch.pk}", f"--out={tmp_path / 'before.csv'}")
    run(f"--resume={batch.pk}", "--retry-failed", f"--out={tmp_path / 'after.csv'}")

    batch.refresh_from_db()
    assert (batch.status, batch.processed_items, batch.failed_items) == ("completed", 3, 0)
    assert [row["status"] for row in read_csv(tmp_path / "after.csv")] == ["done"] * 3


def test_cancelled_batch_resumes_its_cancelled_rows(fake_ai, make_batch, tmp_path):
    batch = make_batch(3)
    services.cancel_batch(batch=batch)

    run(f"--resume={batch.pk}", f"--out={tmp_path / 'r.csv'}")

    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == 3


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_finishes_rows_in_flight_writes_results_and_says_how_to_resume(
    fake_ai, make_batch, tmp_path
):
    batch = make_batch(40)
    fake_ai.latency = 0.2
    out_path = tmp_path / "partial.csv"
    child = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_batch",
            f"--resume={batch.pk}",
            "--concurrency=2",
            "--slice-seconds=0.5",
            f"--out={out_path}",
        ],
        cwd=ROOT,
        env=child_env(fake_ai),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once rows are being answered (the first progress line is on stderr).
        wait_until(
            lambda: fake_ai.requests, timeout=60, message="the child never called the provider"
        )
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()

    assert child.returncode == 130, stderr
    assert f"Resume with: manage.py run_batch --resume {batch.pk}" in stderr
    assert f"Results: {out_path}" in stdout
    batch.refresh_from_db()
    statuses = list(batch.items.values_list("status", flat=True))
    # Rows in flight were finished and recorded, none left running; the rest wait.
    assert BatchItem.Status.RUNNING not in statuses
    assert statuses.count(BatchItem.Status.DONE) >= 1
    assert statuses.count(BatchItem.Status.PENDING) >= 1
    assert batch.status == Batch.Status.PROCESSING
    exported = read_csv(out_path)
    assert len(exported) == 40
    assert sum(row["status"] == "done" for row in exported) == statuses.count("done")


def test_progress_rewrites_one_line_on_a_terminal():
    buffer = io.StringIO()
    progress = Progress(OutputWrapper(buffer), total=10, finished=0, tty=True)
    progress.update(finished=3, failed=1)
    progress.update(finished=10, failed=1)
    progress.update(finished=10, failed=1, force=True)  # nothing new: not repeated
    progress.close()

    lines = buffer.getvalue().split("\r")[1:]
    assert len(lines) == 2
    assert lines[0].startswith("3/10 rows (30%)  1 failed")
    assert lines[1].startswith("10/10 rows (100%)  1 failed")
    assert lines[1].endswith("\n")
