"""The answer counters the pages read (issue 28, item 5): answers that found nothing,
answers the guard blocked, tokens in and out. The engine's writer keeps them in the
transaction that records the rows; they equal a recount of the rows after a run."""

from __future__ import annotations

import pytest

from batches import engine
from batches.models import Batch
from batches.tests.api_helpers import ApiClient
from batches.tests.test_guard_batch import BLOCKED_ROWS, ROWS, _create, _run, servers  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

COUNTERS = ("not_found_items", "blocked_items", "input_tokens", "output_tokens")


def counters(batch: Batch) -> tuple[int, ...]:
    batch.refresh_from_db()
    return tuple(getattr(batch, name) for name in COUNTERS)


def test_the_writer_keeps_the_answer_counters_equal_to_a_recount(servers, owner):  # noqa: F811
    ai, _search = servers
    batch_id = _create(ApiClient(owner))
    _run(batch_id)
    batch = Batch.objects.get(pk=batch_id)
    kept = counters(batch)
    not_found, blocked, input_tokens, output_tokens = kept
    assert blocked == len(BLOCKED_ROWS)
    assert input_tokens > 0 and output_tokens > 0
    assert batch.processed_items == len(ROWS)
    # Zeroed, then recounted from the rows: the same figures.
    Batch.objects.filter(pk=batch_id).update(**dict.fromkeys(COUNTERS, 0))
    assert counters(batch) == (0, 0, 0, 0)
    batch.recount()
    assert counters(batch) == kept
    # A slice's end recounts the rows' counters but leaves the answers' as the writer kept
    # them (their recount reads every answer's text).
    Batch.objects.filter(pk=batch_id).update(input_tokens=1)
    engine.process_for_duration(batch_id=batch_id, seconds=1)
    assert counters(batch) == (not_found, blocked, 1, output_tokens)
