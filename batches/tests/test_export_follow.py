"""The results file written while a batch runs (batches.export.follow_finished, used by
run_batch): rows go out in order, each once it and every row before it are finished,
and the file ends up as an export written at the end."""

from __future__ import annotations

import threading

import pytest

from batches.export import follow_finished, stream_csv
from batches.models import BatchItem
from batches.tests.factories import BatchFactory, BatchItemFactory

pytestmark = pytest.mark.django_db

DONE, PENDING, FAILED = BatchItem.Status.DONE, BatchItem.Status.PENDING, BatchItem.Status.FAILED


def _batch(statuses, *, repeats=1):
    batch = BatchFactory(repeats=repeats, total_items=len(statuses))
    for position, status in enumerate(statuses):
        BatchItemFactory(
            batch=batch, position=position, status=status, question_index=position // repeats
        )
    return batch


def _positions(items):
    return [item.position for item in items]


def test_rows_go_out_once_they_and_the_rows_before_them_are_finished():
    batch = _batch([DONE, FAILED, DONE, PENDING, DONE])
    over = threading.Event()
    follow = follow_finished(batch, over=over, poll_seconds=0.01)

    assert _positions(next(follow) for _ in range(3)) == [0, 1, 2]
    # Row 4 is done but row 3 is not: nothing more until the run is over.
    over.set()
    assert _positions(follow) == [3, 4]


def test_a_question_with_repeats_goes_out_whole():
    # Two questions answered twice: question 0 is done, question 1 is half done.
    batch = _batch([DONE, DONE, DONE, PENDING, DONE, DONE], repeats=2)
    over = threading.Event()
    follow = follow_finished(batch, over=over, poll_seconds=0.01)

    assert _positions(next(follow) for _ in range(2)) == [0, 1]
    BatchItem.objects.filter(batch=batch, position=3).update(status=DONE)
    assert _positions(next(follow) for _ in range(4)) == [2, 3, 4, 5]
    over.set()
    assert list(follow) == []


def test_followed_export_is_the_export_written_at_the_end():
    batch = _batch([DONE, FAILED, PENDING])
    over = threading.Event()
    over.set()
    followed = b"".join(stream_csv(batch, items=follow_finished(batch, over=over)))
    assert followed == b"".join(stream_csv(batch))
