"""Requests that miss a running batch's shared figures together compute them once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

from django.core.cache import cache
from django.template import Context, Template

from batches.views.common import _shared_while_active


def _running_batch(pk: int) -> SimpleNamespace:
    return SimpleNamespace(pk=pk, is_active=True, created_at=datetime(2026, 12, 4, tzinfo=UTC))


def _two_callers(call) -> tuple[list, list]:
    """`call(compute)` from two threads, the second while the first computes. The first
    computation waits (at most 1 s) for a second one to start: it starts only when the
    second caller is not held back."""
    computed, results = [], []
    first_inside, second_inside = threading.Event(), threading.Event()

    def compute(name: str):
        def run():
            computed.append(name)
            if name == "first":
                first_inside.set()
                second_inside.wait(1.0)
            else:
                second_inside.set()
            return f"figures of {name}"

        return run

    first = threading.Thread(target=lambda: results.append(call(compute("first"))))
    first.start()
    first_inside.wait(5)
    second = threading.Thread(target=lambda: results.append(call(compute("second"))))
    second.start()
    first.join(5)
    second.join(5)
    return computed, results


def test_callers_who_miss_together_share_one_computation():
    cache.clear()
    batch = _running_batch(990_001)
    computed, results = _two_callers(lambda compute: _shared_while_active(batch, "grades", compute))
    assert computed == ["first"]
    assert results == ["figures of first", "figures of first"]


def test_the_rows_table_fragment_is_rendered_once_for_requests_that_miss_it_together():
    cache.clear()
    template = Template(
        "{% load batch_tags cache %}{% cache_once 60 t key %}{{ render }}{% endcache %}"
    )

    def call(compute):
        return template.render(Context({"key": "rows-1", "render": compute}))

    computed, results = _two_callers(call)
    assert computed == ["first"]
    assert results == ["figures of first", "figures of first"]
