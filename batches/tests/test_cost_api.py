"""The estimate and budget through the API and run_batch."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from batches.models import Batch
from batches.tests.api_helpers import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_returns_the_estimate_and_the_budget(fake_ai, api, settings):
    settings.AI_PRICES = {"compatible": (1.0, 2.0)}
    response = api.post(
        "batch/create",
        {
            "rows": [{"question": "Q1?"}, {"question": "Q2?"}],
            "searchProvider": "none",
            "aiProvider": "compatible",
            "budget": 5,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["budget"] == 5.0 and body["spent"] == 0.0 and body["statusReason"] == ""
    assert body["estimate"]["calls"]["answer"] == 2
    assert body["estimate"]["cost"]["known"] is True
    assert body["estimate"]["tokens"]["countedBy"] == "o200k_base"  # camelCase keys


def test_estimate_route_owner_and_stranger(fake_ai, api, make_batch, other_user):
    batch = make_batch(3)
    response = api.get("batch/estimate", {"batchId": batch.pk})
    assert response.status_code == 200
    assert response.json()["estimate"]["calls"]["total"] == 3
    stranger = ApiClient(other_user)
    assert stranger.get("batch/estimate", {"batchId": batch.pk}).status_code == 404
    assert stranger.post("batch/budget", {"batchId": batch.pk, "budget": 1}).status_code == 404


def test_raising_the_budget_resumes_a_paused_batch(fake_ai, api, make_batch):
    batch = make_batch(2)
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.PAUSED, pause_reason=Batch.PauseReason.BUDGET, budget=1, spent=1
    )
    status = api.get("batch/status", {"batchId": batch.pk}).json()
    assert status["status"] == "paused" and status["statusReason"] == "budget reached"
    response = api.post("batch/budget", {"batchId": batch.pk, "budget": 10})
    assert response.status_code == 200
    assert response.json()["status"] == "queued" and response.json()["statusReason"] == ""


QUESTIONS = "question\nHow do I renew?\nWhere is the form?\n"


@pytest.fixture
def questions(tmp_path) -> Path:
    path = tmp_path / "q.csv"
    path.write_text(QUESTIONS, encoding="utf-8")
    return path


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("run_batch", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_run_batch_prints_the_estimate_and_asks_on_a_terminal(questions, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    out = _run(str(questions), "--out", str(tmp_path / "r.csv"))
    assert "Estimate: 2 provider calls" in out
    assert "Start this batch? [y/N]" in out
    assert "Not started" in out
    assert Batch.objects.get().status == Batch.Status.UPLOADED

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    out = _run(str(questions), "--out", str(tmp_path / "r.csv"))
    assert "Every row was answered." in out


def test_run_batch_yes_skips_the_question(questions, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal(""))  # would answer "no"
    out = _run(str(questions), "--yes", "--out", str(tmp_path / "r.csv"))
    assert "Start this batch?" not in out
    assert "Every row was answered." in out


def test_run_batch_budget_pauses_and_says_how_to_raise_it(fake_ai, questions, tmp_path, settings):
    settings.AI_PRICES = {"compatible": (1000.0, 1000.0)}  # a row costs ~0.1
    with pytest.raises(CommandError, match="budget reached"):
        _run(
            str(questions),
            "--provider",
            "compatible",
            "--search",
            "none",
            "--budget",
            "0.0001",
            "--out",
            str(tmp_path / "r.csv"),
        )
    batch = Batch.objects.get()
    assert batch.budget_reached and batch.processed_items == 0
    out = _run("--resume", str(batch.pk), "--budget", "100", "--out", str(tmp_path / "r.csv"))
    assert "Every row was answered." in out


@pytest.mark.parametrize("stdin", [None, "closed"])
def test_run_batch_without_standard_input_starts(questions, tmp_path, monkeypatch, stdin):
    if stdin == "closed":
        stdin = io.StringIO()
        stdin.close()
    monkeypatch.setattr(sys, "stdin", stdin)
    assert "Every row was answered." in _run(str(questions), "--out", str(tmp_path / "r.csv"))
