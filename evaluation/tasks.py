"""Celery tasks of evaluation: thin wrappers over evaluation.regrade (ids in, re-fetch)."""

from __future__ import annotations

from celery import shared_task

import batchchat.celery  # noqa: F401 - the configured app, before the tasks bind to one
from evaluation import regrade
from evaluation.models import RegradeJob


@shared_task(ignore_result=True)
def run_regrade_job(job_id: int) -> None:
    """Grade a RegradeJob to its end (or until it is cancelled)."""
    try:
        job = RegradeJob.objects.get(pk=job_id)
    except RegradeJob.DoesNotExist:
        return  # its batch was deleted meanwhile
    regrade.run_to_end(job)
