"""The one seam between the lifecycle and the runners: "this batch has work, schedule it".

Runners (the Celery tasks, the worker, the page driver, run_batch) call the lifecycle
services and the engine; the services never import a runner. When a service queues a
batch (start, resume, retry, recovery), it calls `schedule(batch_id)`, and the runner
that `runner_mode()` names takes it:

- `celery` (CELERY_BROKER_URL set): `celery_schedule`, registered at start
  (BatchesConfig.ready), imports batches.tasks at first use and enqueues slice tasks
  once the transaction commits;
- `inline` (no broker): nothing to enqueue; a `run_worker` finds active batches on its
  own, and the batch page drives slices while no worker is alive.

The mode is read at each call, so a test (or a setting changed at run time) switches
runner without registering again. Tests replace a runner with
`monkeypatch.setitem(runners.schedulers, "celery", recorder)`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

# mode -> its scheduler (called with the batch id, inside the caller's transaction).
schedulers: dict[str, Callable[[int], None]] = {}


def celery_schedule(batch_id: int) -> None:
    """The Celery runner's scheduler (batches.tasks.schedule_slices), imported at first
    use (it loads the configured Celery app first)."""
    from batches import tasks

    tasks.schedule_slices(batch_id)


def runner_mode() -> str:
    """'celery' when a broker is configured, else 'inline' (the caller drives slices)."""
    return "celery" if settings.CELERY_BROKER_URL else "inline"


def register(mode: str, schedule: Callable[[int], None]) -> None:
    """Make `schedule` the scheduler of runner `mode` (called once, at start)."""
    schedulers[mode] = schedule


def schedule(batch_id: int) -> None:
    """Hand a queued batch to the configured runner (a no-op for a runner that finds
    its batches itself)."""
    scheduler = schedulers.get(runner_mode())
    if scheduler is not None:
        scheduler(batch_id)
