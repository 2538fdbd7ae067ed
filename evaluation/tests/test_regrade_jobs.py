"""'Grade again' with the AI judge as background work of the batch: a RegradeJob graded
chunk by chunk (progress), cancelled between chunks, and the rows the judge gave no
verdict judged again. The judge is the fake OpenAI-protocol server's (key ideas found)."""

from __future__ import annotations

import pytest

from batches import engine, services
from batches.models import Batch, BatchItem
from batches.uploads import ParsedRow
from evaluation import regrade
from evaluation.grading import grade_summary
from evaluation.models import RegradeJob

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = [
    "Fake answer cancel",  # the fake's answer holds every idea: pass
    "Fake answer formats",
    "[malformed] the judge replies with no JSON: no verdict",
    "Fake answer maximum",
]


@pytest.fixture
def answered(fake_ai, owner, settings) -> Batch:
    settings.CELERY_BROKER_URL = ""  # the page runner advances the job
    rows = [
        ParsedRow(question=question, expected_answer=expected)
        for question, expected in zip(
            ["How do I cancel?", "Which formats?", "Why?", "What is the maximum?"],
            EXPECTED,
            strict=True,
        )
    ]
    batch = services.create_batch_run(
        uploader=owner,
        name="Judged later",
        rows=rows,
        ai_provider="compatible",
        model="local-model",
        search_provider="none",
    )
    services.start_batch(batch=batch)
    while engine.process_for_duration(batch_id=batch.pk, seconds=30).remaining:
        pass
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED and not batch.judge_enabled
    fake_ai.reset()
    return batch


def _verdicts(batch: Batch) -> list[str]:
    return list(batch.items.order_by("position").values_list("judge_verdict", flat=True))


def test_grade_again_with_the_judge_runs_in_chunks_with_progress(answered, fake_ai):
    job = regrade.start_regrade(batch=answered, judge_enabled=True)

    # Nothing judged in the request: the job waits for its runner.
    assert (job.status, job.total, job.done, job.percent) == ("running", 4, 0, 0)
    assert len(fake_ai.requests) == 0
    assert regrade.active_job(answered) == job

    assert regrade.advance(job, chunk=2)
    assert (job.done, job.percent) == (2, 50)
    assert len(fake_ai.requests) == 2
    assert _verdicts(answered)[:2] == ["pass", "pass"]

    while regrade.advance(job, chunk=2):
        pass
    job.refresh_from_db()
    assert (job.status, job.done) == (RegradeJob.Status.DONE, 4)
    assert regrade.active_job(answered) is None
    assert _verdicts(answered) == ["pass", "pass", "error", "pass"]
    summary = grade_summary(answered)
    assert (summary.judged, summary.judge_passed, summary.judge_no_verdict) == (3, 3, 1)
    assert regrade.no_verdict_count(answered) == 1
    assert not regrade.advance(job)  # a finished job does nothing


def test_cancel_stops_between_chunks_and_keeps_what_was_graded(answered, fake_ai):
    job = regrade.start_regrade(batch=answered, judge_enabled=True)
    regrade.advance(job, chunk=1)

    assert regrade.cancel_regrade(batch=answered) == 1

    assert not regrade.advance(job, chunk=1)
    job.refresh_from_db()
    assert (job.status, job.done) == (RegradeJob.Status.CANCELLED, 1)
    assert _verdicts(answered) == ["pass", "", "", ""]
    assert len(fake_ai.requests) == 1
    assert regrade.cancel_regrade(batch=answered) == 0


def test_a_new_grade_again_cancels_the_running_one(answered):
    first = regrade.start_regrade(batch=answered, judge_enabled=True)
    second = regrade.start_regrade(batch=answered, judge_enabled=True)

    first.refresh_from_db()
    assert first.status == RegradeJob.Status.CANCELLED
    assert regrade.active_job(answered) == second


def test_rows_with_no_verdict_are_judged_again_and_only_they(answered, fake_ai):
    regrade.run_to_end(regrade.start_regrade(batch=answered, judge_enabled=True))
    assert regrade.no_verdict_count(answered) == 1
    fake_ai.reset()
    # The judge's trouble is over (here: the expected answer no longer trips the fake).
    BatchItem.objects.filter(batch=answered, position=2).update(expected_answer="Fake answer")

    job = regrade.rejudge_no_verdict(batch=answered)

    assert (job.only_no_verdict, job.total) == (True, 1)
    regrade.run_to_end(job)
    assert len(fake_ai.requests) == 1
    assert _verdicts(answered) == ["pass", "pass", "pass", "pass"]
    assert regrade.no_verdict_count(answered) == 0
    assert grade_summary(answered).judge_no_verdict == 0


def test_without_the_judge_grade_again_finishes_in_the_request(answered, fake_ai):
    job = regrade.start_regrade(batch=answered, judge_enabled=False)

    assert (job.status, job.done, job.total) == (RegradeJob.Status.DONE, 4, 4)
    assert len(fake_ai.requests) == 0


def test_with_a_broker_the_job_is_a_celery_task(answered, settings, monkeypatch):
    from evaluation import tasks

    sent = []
    monkeypatch.setattr(tasks.run_regrade_job, "delay_on_commit", sent.append)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/4"

    job = regrade.start_regrade(batch=answered, judge_enabled=True)

    assert sent == [job.pk]
    tasks.run_regrade_job(job.pk)  # what the worker runs
    job.refresh_from_db()
    assert (job.status, job.done) == (RegradeJob.Status.DONE, 4)


def test_the_worker_finishes_a_judge_job_with_no_page_open(answered, fake_ai):
    """No broker and no page polling: run_worker grades the job between batches."""
    from batches.worker import Worker

    job = regrade.start_regrade(batch=answered, judge_enabled=True)
    worker = Worker(poll_seconds=0.05)
    for _ in range(10):
        if not worker.run_once():
            break
    job.refresh_from_db()
    assert (job.status, job.done) == (RegradeJob.Status.DONE, 4)
    assert _verdicts(answered) == ["pass", "pass", "error", "pass"]
    assert len(fake_ai.requests) == 4
    assert worker.run_once() is False  # nothing left: the worker idles
