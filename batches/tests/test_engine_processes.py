"""Several processes on one batch, and a process killed mid-slice (SIGKILL)."""

from __future__ import annotations

import pytest
from django.db.models import Count

from batchchat.tests.waiting import wait_until
from batches import engine
from batches.models import Batch, BatchItem
from batches.tests.assertions import (
    assert_counters_match_recount,
    assert_one_interaction_per_done_item,
)
from batches.tests.processes import child_env, start_slice_process
from chats.models import Interaction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.postgres
def test_four_processes_on_one_batch_complete_each_row_exactly_once(fake_ai, make_batch):
    fake_ai.latency = 0.02
    batch = make_batch(500)
    env = child_env(fake_ai)

    procs = [
        start_slice_process(batch_id=batch.pk, seconds=120, concurrency=8, env=env)
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    done_per_process = [int(out.split()[0]) for out, _ in outputs]
    assert sum(done_per_process) == 500
    assert sum(1 for n in done_per_process if n > 0) >= 2  # the work really was shared
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert len(fake_ai.requests) == 500
    per_chat = Interaction.objects.filter(chat__batch_items__batch=batch).values("chat")
    assert max(row["n"] for row in per_chat.annotate(n=Count("id"))) == 1


def test_a_process_killed_mid_slice_loses_and_duplicates_nothing(fake_ai, make_batch, settings):
    fake_ai.latency = 0.3
    settings.BATCH_LEASE_SECONDS = 2
    batch = make_batch(40)
    proc = start_slice_process(
        batch_id=batch.pk,
        seconds=120,
        concurrency=4,
        env=child_env(fake_ai, BATCH_LEASE_SECONDS=2),
    )

    def four_rows_done() -> bool:
        assert proc.poll() is None, proc.communicate()
        return batch.items.filter(status=BatchItem.Status.DONE).count() >= 4

    wait_until(four_rows_done, timeout=30, interval=0.05, message="the child answered no rows")

    proc.kill()  # SIGKILL: no cleanup, its leases stay behind
    proc.wait(timeout=10)
    orphaned = batch.items.filter(status=BatchItem.Status.RUNNING).count()
    assert orphaned > 0

    # Another caller finishes the batch once the dead process's leases expire.
    wait_until(
        lambda: (
            engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=8).status
            == Batch.Status.COMPLETED
        ),
        timeout=60,
        interval=0.5,
        message="the batch was not completed after the leases expired",
    )

    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert batch.items.filter(status=BatchItem.Status.DONE).count() == 40
    per_chat = Interaction.objects.filter(chat__batch_items__batch=batch).values("chat")
    assert max(row["n"] for row in per_chat.annotate(n=Count("id"))) == 1
    # Rows the dead process held were asked again, at most once more each (some it had
    # claimed but not yet sent).
    assert 40 <= len(fake_ai.requests) <= 40 + orphaned
