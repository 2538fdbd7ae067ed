"""'Grade again' as work of the batch: a RegradeJob graded chunk by chunk in the
background, with progress and cancel.

- `start_regrade`: records the job (judge switched on or off on the batch). Without the
  AI judge grading is local and cheap: the job runs to its end in the request. With the
  judge (one provider call per row) the job is handed to Celery when a broker is set
  (`evaluation.tasks.run_regrade_job`); otherwise the batch page's progress poll advances
  it one chunk per poll (`advance`, the page runner) and `run_worker` between batches
  (`advance_next`, through batches.hooks), like answering.
- `advance`: grades the next chunk (at most `chunk` rows) and saves the progress; a
  cancelled or finished job does nothing.
- `cancel_regrade`: stops a running job after its current chunk; rows graded so far keep
  their new grades, the others keep their old ones.
- `rejudge_no_verdict`: a job over only the rows the judge gave no verdict.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from batches.models import Batch, BatchItem, JudgeVerdict
from evaluation import grading
from evaluation.models import RegradeJob

JUDGE_CHUNK = 20  # rows per chunk with the judge: progress moves at least every chunk


def _rows(job: RegradeJob):
    rows = grading._gradable(job.batch_id)
    if job.only_no_verdict:
        rows = rows.filter(judge_verdict=JudgeVerdict.ERROR)
    return rows


def active_job(batch: Batch) -> RegradeJob | None:
    return RegradeJob.objects.filter(batch=batch, status=RegradeJob.Status.RUNNING).first()


def start_regrade(
    *, batch: Batch, judge_enabled: bool | None = None, only_no_verdict: bool = False
) -> RegradeJob:
    """Record a job grading the batch's answered rows again (any running one is cancelled
    first) and start it (module docstring)."""
    if judge_enabled is not None and judge_enabled != batch.judge_enabled:
        batch.judge_enabled = judge_enabled
        Batch.objects.filter(pk=batch.pk).update(judge_enabled=judge_enabled)
    with transaction.atomic():
        RegradeJob.objects.filter(batch=batch, status=RegradeJob.Status.RUNNING).update(
            status=RegradeJob.Status.CANCELLED
        )
        job = RegradeJob.objects.create(batch=batch, only_no_verdict=only_no_verdict)
        job.total = _rows(job).count()
        job.save(update_fields=["total"])
    if not only_no_verdict:
        grading.clear_lost_grades(batch)
    if not batch.judge_enabled:
        while advance(job, chunk=grading.GRADE_CHUNK):
            pass
    elif _celery_runs_jobs():
        from evaluation.tasks import run_regrade_job

        run_regrade_job.delay_on_commit(job.pk)
    return job


def rejudge_no_verdict(*, batch: Batch) -> RegradeJob:
    """Ask the judge again about the rows it gave no verdict."""
    return start_regrade(batch=batch, judge_enabled=True, only_no_verdict=True)


def advance(job: RegradeJob, *, chunk: int = JUDGE_CHUNK) -> bool:
    """Grade the job's next chunk; returns whether rows remain. Safe to call from two
    places at once: the chunk's rows are claimed by moving `last_position` first."""
    job.refresh_from_db()
    if job.status != RegradeJob.Status.RUNNING:
        return False
    items = list(_rows(job).filter(position__gt=job.last_position)[:chunk])
    if not items:
        RegradeJob.objects.filter(pk=job.pk, status=RegradeJob.Status.RUNNING).update(
            status=RegradeJob.Status.DONE
        )
        job.refresh_from_db()
        return False
    claimed = RegradeJob.objects.filter(
        pk=job.pk, status=RegradeJob.Status.RUNNING, last_position=job.last_position
    ).update(last_position=items[-1].position)
    if not claimed:  # another runner took this chunk, or the job was cancelled
        return True
    graded = grading.grade_items(items=items)
    last = len(items) < chunk  # a short chunk is the end: the poll can stop now
    RegradeJob.objects.filter(pk=job.pk).update(done=F("done") + graded)
    if last:
        RegradeJob.objects.filter(pk=job.pk, status=RegradeJob.Status.RUNNING).update(
            status=RegradeJob.Status.DONE
        )
    job.refresh_from_db()
    return not last


def _celery_runs_jobs() -> bool:
    return bool(settings.CELERY_BROKER_URL)


def page_turn(batch: Batch) -> None:
    """The page runner's turn, on the batch page's progress poll: without a Celery broker
    it grades the running job's next chunk (with one, the task does)."""
    job = active_job(batch)
    if job is not None and not _celery_runs_jobs():
        advance(job)


def advance_next() -> bool:
    """One chunk of the running job touched least recently (the worker's turn, so several
    jobs share it); False when no job runs."""
    job = RegradeJob.objects.filter(status=RegradeJob.Status.RUNNING).order_by("updated_at", "pk")
    job = job.first()
    if job is None:
        return False
    advance(job)
    RegradeJob.objects.filter(pk=job.pk).update(updated_at=timezone.now())
    return True


def run_to_end(job: RegradeJob) -> None:
    """The Celery task's loop: chunk after chunk until done or cancelled."""
    while advance(job):
        pass


def cancel_regrade(*, batch: Batch) -> int:
    """Cancel the batch's running job; returns how many were cancelled (0 or 1)."""
    return RegradeJob.objects.filter(batch=batch, status=RegradeJob.Status.RUNNING).update(
        status=RegradeJob.Status.CANCELLED
    )


def no_verdict_count(batch: Batch) -> int:
    return BatchItem.objects.filter(
        batch=batch, status=BatchItem.Status.DONE, judge_verdict=JudgeVerdict.ERROR
    ).count()
