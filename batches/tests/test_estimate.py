"""The cost estimate before start (batches.estimate), prices (chats.providers.prices), and
the budget that pauses a batch (batches.costs), against the fake provider server."""

from __future__ import annotations

import datetime
import json
import statistics
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from batches.costs import set_budget
from batches.engine import process_for_duration
from batches.estimate import DEFAULT_OUTPUT_TOKENS, calls_for, estimate_batch, refresh_estimate
from batches.models import Batch, BatchItem
from batches.services import create_batch_run, start_batch
from batches.uploads import ParsedRow
from batches.uploads.files import parse_upload
from chats.models import Interaction, ModelPrice
from chats.providers.prices import price_for
from chats.tests.fake_servers import FakeAIServer

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = Path(django_settings.BASE_DIR) / "sample" / "questions.csv"


@pytest.fixture
def fake_o200k(settings):
    """The fake provider, reporting usage counted with o200k_base as OpenAI does."""
    with FakeAIServer(tokenizer="o200k_base") as server:
        server.configure(settings)
        settings.PROVIDER_MAX_ATTEMPTS = 2
        yield server


def _rows(n: int, **extra) -> list[ParsedRow]:
    return [
        ParsedRow(question=f"How do I renew permit {i}?", columns={"question": "q"}, **extra)
        for i in range(n)
    ]


# --- prices -------------------------------------------------------------------------------


def test_shipped_price_has_its_date_source_and_batch_discount():
    price = price_for("openai", "gpt-4o-mini")
    assert (price.input, price.output, price.batch_discount) == (0.15, 0.60, 0.5)
    assert price.date and price.source.startswith("https://") and price.origin == "shipped"
    assert price.cost(1_000_000, 1_000_000, economy=True) == pytest.approx(0.375)


def test_the_default_anthropic_models_are_priced():
    for model in django_settings.ANTHROPIC_MODELS:
        price = price_for("anthropic", model)
        assert price is not None and price.origin == "shipped", model
        assert price.batch_discount == 0.5 and price.source.startswith("https://")


def test_unknown_model_has_no_price():
    assert price_for("openai", "gpt-unknown") is None
    assert price_for("compatible", "local-model") is None


def test_ai_prices_override_the_shipped_table_and_keep_its_discount(settings):
    settings.AI_PRICES = {"openai:gpt-4o-mini": (1.0, 2.0), "compatible": (0.5, 0.5)}
    price = price_for("openai", "gpt-4o-mini")
    assert (price.input, price.output, price.batch_discount) == (1.0, 2.0, 0.5)
    assert price.origin == "setting"
    assert price_for("compatible", "anything").input == 0.5


def test_admin_price_wins_over_the_setting_and_the_file(settings):
    settings.AI_PRICES = {"openai:gpt-4o-mini": (1.0, 2.0)}
    ModelPrice.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        input_per_million=Decimal("0.2"),
        output_per_million=Decimal("0.8"),
        batch_discount=Decimal("0.5"),
        date=datetime.date(2026, 12, 1),
        source="contract",
    )
    price = price_for("openai", "gpt-4o-mini")
    assert (price.input, price.output, price.origin) == (0.2, 0.8, "admin")


# --- the estimate ---------------------------------------------------------------------------


def test_estimate_counts_calls_tokens_cost_and_duration(fake_ai, settings, owner):
    settings.AI_PRICES = {"compatible:local-model": (1.0, 4.0)}
    settings.BATCH_CONCURRENCY = 4
    settings.PROVIDER_RATE_LIMITS = {"compatible": {"rpm": 60, "tpm": 0}}
    rows = _rows(10, expected_answer="Renew online.")
    batch = create_batch_run(
        uploader=owner,
        name="known",
        rows=rows,
        ai_provider="compatible",
        model="local-model",
        search_provider="none",
        judge_enabled=True,
    )
    estimate = estimate_batch(batch)
    assert estimate["calls"] == {"rows": 10, "answer": 10, "judge": 10, "guard": 0, "total": 20}
    tokens = estimate["tokens"]
    assert tokens["basis"] == "sample" and tokens["sample_rows"] == 10
    assert tokens["output_per_row"] == DEFAULT_OUTPUT_TOKENS
    assert tokens["input_per_row"] > 100  # the system prompt's instructions are counted
    cost = estimate["cost"]
    assert cost["known"] and cost["price"]["origin"] == "setting"
    expected = (tokens["input"] * 1.0 + tokens["output"] * 4.0) / 1_000_000
    assert cost["realtime"] == pytest.approx(expected, rel=0.01)
    assert cost["economy"] == pytest.approx(cost["realtime"])  # compatible: no batch API
    # 20 calls at 60 a minute (4 calls in flight at 3 s each would go faster).
    assert estimate["duration"]["limited_by"] == "rpm"
    assert estimate["duration"]["seconds"] == 20


def test_guard_ai_check_adds_a_call_per_row(fake_ai, settings, make_batch):
    settings.GUARD_AI_CHECK = True
    assert calls_for(make_batch(3))["total"] == 6


def test_unknown_price_says_so(fake_ai, make_batch):
    cost = estimate_batch(make_batch(2))["cost"]
    assert cost == {
        "known": False,
        "currency": "USD",
        "spent": 0.0,
        "realtime": None,
        "economy": None,
        "price": None,
        "cost_per_row": 0.0,
        "extra_per_row": 0.0,
    }


def _sample_batch(owner, *, model="gpt-4o-mini") -> Batch:
    parsed = parse_upload(data=SAMPLE.read_bytes(), filename="questions.csv")
    return create_batch_run(
        uploader=owner,
        name="sample",
        rows=parsed.rows,
        ai_provider="openai",
        model=model,
        search_provider="local",
        input_columns=parsed.columns,
    )


def _measured(batch: Batch) -> tuple[int, int]:
    totals = Interaction.objects.filter(batch_item__batch=batch).values_list(
        "input_tokens", "output_tokens"
    )
    return sum(i for i, _o in totals), sum(o for _i, o in totals)


def test_estimate_of_the_sample_questions_is_within_25_percent_of_the_measured_tokens(
    fake_o200k, settings, owner, tmp_path
):
    """The figure in the README: estimate vs tokens measured in real-time mode."""
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "index.sqlite3")
    batch = _sample_batch(owner)
    estimate = estimate_batch(batch)
    result = process_for_duration(batch_id=batch.pk, seconds=60)
    assert result.status == Batch.Status.COMPLETED
    measured_in, measured_out = _measured(batch)
    est_in, est_out = estimate["tokens"]["input"], estimate["tokens"]["output"]
    measured_total = measured_in + measured_out
    print(f"estimate in={est_in} out={est_out}; measured in={measured_in} out={measured_out}")
    assert abs(est_in - measured_in) <= 0.25 * measured_in
    # Before any answer of the model is known (output: DEFAULT_OUTPUT_TOKENS a row), the
    # total is within the 25 % (the fake model answers shorter than the default).
    assert abs(est_in + est_out - measured_total) <= 0.25 * measured_total
    # A second batch of the same questions: output tokens from the model's last answers.
    again = estimate_batch(_sample_batch(owner))
    assert abs(again["tokens"]["input"] - measured_in) <= 0.25 * measured_in
    assert abs(again["tokens"]["output"] - measured_out) <= 0.25 * measured_out
    total = again["tokens"]["input"] + again["tokens"]["output"]
    print(f"second estimate in={again['tokens']['input']} out={again['tokens']['output']}")
    assert abs(total - measured_total) <= 0.25 * measured_total


def test_default_output_tokens_is_the_old_applications_typical_answer():
    """DEFAULT_OUTPUT_TOKENS comes from the legacy exports' answers (see batches/estimate.py)."""
    sample = Path(__file__).parent / "legacy_data" / "sample"

    def records(path: Path):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def count(value) -> int:
        return int(value["$numberLong"]) if isinstance(value, dict) else int(value)

    era1 = [
        count(entry["answer_output_tokens"])
        for batch in records(sample / "era1-inline" / "batches.json")
        for entry in batch.get("entries", [])
        if entry.get("answer_output_tokens")
    ]
    era2 = [
        count(a["outputTokens"])
        for a in records(sample / "era2-refs" / "answers.json")
        if a.get("outputTokens")
    ]
    answers = era1 + era2
    assert len(answers) == 23
    assert round(statistics.mean(answers)) == DEFAULT_OUTPUT_TOKENS
    assert statistics.median(answers) == DEFAULT_OUTPUT_TOKENS


def test_estimate_is_corrected_from_measured_tokens_while_running(
    fake_o200k, settings, owner, tmp_path
):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "index.sqlite3")
    batch = _sample_batch(owner)
    stop_after = iter(range(1000))
    process_for_duration(
        batch_id=batch.pk, seconds=60, concurrency=1, should_stop=lambda: next(stop_after) >= 5
    )
    batch.refresh_from_db()
    left = batch.items.unfinished().count()
    assert 0 < left < batch.total_items
    estimate = estimate_batch(batch)
    assert estimate["tokens"]["basis"] == "measured"
    assert estimate["calls"]["answer"] == left
    done_in, done_out = _measured(batch)
    done = batch.total_items - left
    assert estimate["tokens"]["input_per_row"] == round(done_in / done)


# --- the budget -----------------------------------------------------------------------------


def test_budget_at_half_the_estimate_pauses_near_half_and_resumes_when_raised(
    fake_o200k, settings, owner, tmp_path
):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "index.sqlite3")
    # One batch first, so that the estimate knows the fake model's (short) answers.
    process_for_duration(batch_id=_sample_batch(owner).pk, seconds=60)
    batch = _sample_batch(owner)
    estimate = refresh_estimate(batch)
    half = Decimal(str(estimate["cost"]["realtime"] / 2))
    set_budget(batch=batch, budget=half)
    start_batch(batch=batch)
    process_for_duration(batch_id=batch.pk, seconds=60, concurrency=2)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.PAUSED
    assert batch.status_reason == "budget reached"
    done = batch.items.filter(status=BatchItem.Status.DONE).count()
    assert batch.total_items * 0.3 <= done <= batch.total_items * 0.7
    costs = list(batch.items.filter(status=BatchItem.Status.DONE).values_list("cost", flat=True))
    assert all(cost and cost > 0 for cost in costs)
    assert batch.spent == pytest.approx(sum(costs))
    # No row starts past the budget; rows already in flight (2 at this concurrency) may
    # cost more than the per-row estimate the check used, so the spend may pass the
    # budget by at most their cost (documented).
    assert batch.spent <= float(half) + 2 * max(costs)
    # A paused batch takes no row.
    assert process_for_duration(batch_id=batch.pk, seconds=5).done == 0

    batch = set_budget(batch=batch, budget=half * 4)
    assert batch.status == Batch.Status.QUEUED and batch.pause_reason == ""
    result = process_for_duration(batch_id=batch.pk, seconds=60, concurrency=2)
    assert result.status == Batch.Status.COMPLETED


def test_a_batch_paused_as_its_last_rows_finished_is_completed(fake_ai, make_batch):
    from batches.engine.process import finish_slice

    batch = make_batch(2)
    process_for_duration(batch_id=batch.pk, seconds=30)
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.PAUSED, pause_reason=Batch.PauseReason.BUDGET
    )
    assert finish_slice(batch.pk, done=0, failed=0).status == Batch.Status.COMPLETED


def test_a_budgeted_batch_made_without_an_estimate_gets_one_before_its_first_row(
    fake_ai, settings, make_batch
):
    settings.AI_PRICES = {"compatible": (1.0, 1.0)}
    batch = make_batch(2)
    Batch.objects.filter(pk=batch.pk).update(budget=100)
    process_for_duration(batch_id=batch.pk, seconds=30)
    batch.refresh_from_db()
    assert batch.estimate["cost_per_row"] > 0
    assert batch.status == Batch.Status.COMPLETED
