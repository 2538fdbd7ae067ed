"""The issue's "done when", end to end with the origin's own file shapes: a range file
whose expected citation column holds URLs and the codes `not-gc` / `pt-muni`, run offline
(extractive) and with an echoing fake model, then compared; and a file whose `BLOCK`
column says which questions the guard must stop."""

from __future__ import annotations

import pytest

from batches import engine, services
from batches.models import Batch
from batches.tests.api_helpers import ApiClient
from batches.uploads import parse_upload
from evaluation.compare import compare_batches
from evaluation.grading import grade_summary

pytestmark = pytest.mark.django_db(transaction=True)

# The origin's range file: expected citation is a URL or an outcome code.
RANGE_FILE = (
    b"Question,Expected citation\n"
    b"Who won the hockey game last night?,not-gc\n"
    b"What is a good recipe for banana bread?,not-gc\n"
    b"When is garbage collection in Ottawa?,pt-muni\n"
    b"How do I renew my passport?,https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports/renew-adult-passport.html\n"
    b"What's the weather on Mars today?,not-gc\n"
)
NOT_GC = [0, 1, 4]

# The origin's guard file: a BLOCK column.
BLOCK_FILE = (
    b"Question,BLOCK\n"
    b'"My SIN is 046 454 286, is my file ok?",Block\n'
    b"Call me at 613-555-0123 about my EI,Block\n"
    b"How do I renew my passport?,Don't block\n"
    b"What is form T4A?,Don't block\n"
    b"Where do I send my tax return?,Block\n"
    b"Write to jean.roy@example.ca about my claim,Don't block\n"
)


@pytest.fixture
def empty_index(settings, tmp_path):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "search-index.sqlite3")


def _run(batch: Batch) -> Batch:
    services.start_batch(batch=batch)
    while engine.process_for_duration(batch_id=batch.pk, seconds=30).remaining:
        pass
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    return batch


def _create(owner, data: bytes, name: str, **providers) -> Batch:
    rows = parse_upload(data=data, filename=f"{name}.csv").rows
    return services.create_batch_run(uploader=owner, name=name, rows=rows, **providers)


def _items(batch: Batch):
    return list(batch.items.select_related("interaction").order_by("position"))


def test_range_file_offline_passes_not_gc_echo_fails_and_compare_says_regressed(
    empty_index, fake_ai, owner
):
    offline = _run(
        _create(owner, RANGE_FILE, "offline", ai_provider="extractive", search_provider="local")
    )
    items = _items(offline)
    assert [item.expected_outcome for item in items] == [
        "not-gc",
        "not-gc",
        "pt-muni",
        "",
        "not-gc",
    ]
    assert items[3].expected_citation_url.startswith("https://www.canada.ca/")
    for position in NOT_GC:
        item = items[position]
        assert item.interaction.answer_type == "not-found", item.question
        assert (item.verdict, item.verdict_reason) == ("pass", "outcome"), item.question
        assert item.answer_found is False

    echo = _run(
        _create(
            owner,
            RANGE_FILE,
            "echo",
            ai_provider="compatible",
            model="local-model",
            search_provider="none",
        )
    )
    echoed = _items(echo)
    assert len(fake_ai.requests) == len(echoed)
    for position in NOT_GC:
        item = echoed[position]
        assert item.interaction.answer.startswith("Fake answer"), item.interaction.answer
        assert item.interaction.answer_type == "normal"
        assert (item.verdict, item.verdict_reason) == ("fail", "outcome"), item.question

    # The offline run is the baseline (the older batch) whichever order the ids come in.
    for a, b in ((offline, echo), (echo, offline)):
        comparison = compare_batches(a=a, b=b)
        assert (comparison.baseline, comparison.new) == (offline, echo)
        changes = [row.change for row in comparison.rows]
        assert [changes[p] for p in NOT_GC] == ["regressed"] * len(NOT_GC)
        assert comparison.summary["regressed"] >= len(NOT_GC)
        assert comparison.summary["improved"] == 0
    pass_rate = next(r for r in comparison.rates if r.name == "pass_rate")
    assert pass_rate.delta is not None and pass_rate.delta < 0

    api = ApiClient(owner)
    for first, second in ((echo, offline), (offline, echo)):
        body = api.get("batch/compare", {"batchId": first.pk, "otherBatchId": second.pk}).json()
        assert (body["baseline"]["batchId"], body["new"]["batchId"]) == (offline.pk, echo.pk)
        rows = {row["row"]: row for row in body["rows"]}
        for position in NOT_GC:
            assert rows[position + 1]["change"] == "regressed"


def test_blocking_file_blocked_rows_are_graded_against_the_block_column(
    empty_index, owner, owner_client
):
    batch = _run(
        _create(owner, BLOCK_FILE, "guarded", ai_provider="extractive", search_provider="local")
    )
    items = _items(batch)
    blocked = [item.interaction.answer_type == "blocked" for item in items]
    assert blocked == [True, True, False, False, False, True]
    for item in items:
        assert item.expected_outcome in {"blocked", "not-blocked"}
        if item.interaction.answer_type == "blocked":
            assert item.interaction.guard_status == "blocked"
            assert item.answer_found is False, item.question
    verdicts = [(item.verdict, item.verdict_reason) for item in items]
    assert verdicts[:2] == [("pass", "outcome"), ("pass", "outcome")]
    assert verdicts[4] == ("fail", "outcome")  # expected a block, answered
    assert verdicts[5] == ("fail", "outcome")  # blocked, expected not to be

    summary = grade_summary(batch)
    assert (summary.guard_true_blocks, summary.guard_false_blocks) == (2, 1)
    assert summary.guard_missed_blocks == 1
    assert summary.guard_precision == round(2 / 3, 4)
    assert summary.guard_recall == round(2 / 3, 4)
    # Blocked rows never count as answers found.
    assert summary.found <= 3

    api = ApiClient(owner)
    status = api.get("batch/status", {"batchId": batch.pk}).json()
    assert status["blockedItems"] == 3
    page = owner_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Guard precision: 67" in page and "(2/3 blocked)" in page
    assert "(2/3 expected blocks)" in page
