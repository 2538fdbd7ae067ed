"""Admission of slices: one per batch per caller, a cap per user and per process; a
refusal is a clear 409/429 (API) or an idle driver (pages), never a 500."""

from __future__ import annotations

import pytest

from batches import engine
from batches.admission import running_slices, slice_admission
from batches.errors import SliceRefused
from batches.tests.api_helpers import ApiClient, error_of
from batches.tests.factories import BatchFactory, BatchItemFactory


@pytest.fixture
def calls(monkeypatch):
    """process_for_duration replaced by a recorder: these tests are about admission."""
    made: list[int] = []
    real = engine.process_for_duration

    def record(*, batch_id, seconds, **options):
        made.append(batch_id)
        return real(batch_id=batch_id, seconds=0.01, **options)

    monkeypatch.setattr(engine, "process_for_duration", record)
    return made


def active_batch(user, **kwargs):
    batch = BatchFactory(uploader=user, status="queued", **kwargs)
    BatchItemFactory(batch=batch)
    return batch


def refusal(user, batch_id: int) -> SliceRefused:
    try:
        with slice_admission(user=user, batch_id=batch_id):
            pass
    except SliceRefused as exc:
        return exc
    raise AssertionError("admitted")


def test_a_second_slice_of_the_same_batch_by_the_same_caller_is_refused(owner_like):
    with slice_admission(user=owner_like, batch_id=1):
        refused = refusal(owner_like, 1)
    assert (refused.status, refused.code) == (409, "slice_running")
    with slice_admission(user=owner_like, batch_id=1):  # released: admitted again
        assert running_slices() == 1
    assert running_slices() == 0


def test_each_user_has_a_cap_and_the_process_has_one(settings, owner_like, other_like):
    settings.MAX_SLICES_PER_USER = 2
    settings.MAX_CONCURRENT_SLICES = 3
    with slice_admission(user=owner_like, batch_id=1), slice_admission(user=owner_like, batch_id=2):
        refused = refusal(owner_like, 3)
        assert (refused.status, refused.code) == (429, "too_many_slices")
        with slice_admission(user=other_like, batch_id=1):  # another caller, same batch
            refused = refusal(other_like, 4)
            assert (refused.status, refused.code) == (429, "server_busy")
    assert running_slices() == 0


def test_a_slice_that_raises_still_frees_its_place(owner_like):
    with pytest.raises(RuntimeError), slice_admission(user=owner_like, batch_id=1):
        raise RuntimeError("boom")
    assert running_slices() == 0


@pytest.mark.django_db
def test_api_answers_409_while_the_caller_runs_a_slice_of_that_batch(owner, calls):
    api = ApiClient(owner)
    batch = active_batch(owner)
    with slice_admission(user=owner, batch_id=batch.pk):
        response = api.post("batch/process-for-duration", {"batchId": batch.pk, "seconds": 1})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "slice_running" and "already running" in error["message"]
    assert response["Retry-After"] == "5"
    assert calls == []


@pytest.mark.django_db
def test_api_answers_429_past_the_users_cap_and_the_servers(owner, other_user, settings, calls):
    settings.MAX_SLICES_PER_USER = 1
    settings.MAX_CONCURRENT_SLICES = 2
    api, other_api = ApiClient(owner), ApiClient(other_user)
    first, second = active_batch(owner), active_batch(owner)
    theirs = active_batch(other_user)
    with slice_admission(user=owner, batch_id=first.pk):
        response = api.post("batch/process-for-duration", {"batchId": second.pk})
        assert response.status_code == 429
        assert error_of(response)["code"] == "too_many_slices"
        with slice_admission(user=type("Third", (), {"pk": -1})(), batch_id=0):
            response = other_api.post("batch/process-for-duration", {"batchId": theirs.pk})
            assert response.status_code == 429
            assert error_of(response)["code"] == "server_busy"
    assert calls == []
    response = api.post("batch/process-for-duration", {"batchId": second.pk})
    assert response.status_code == 200 and calls == [second.pk]


@pytest.mark.django_db
def test_the_page_driver_runs_nothing_and_waits_when_refused(owner_client, owner, calls):
    batch = active_batch(owner)
    with slice_admission(user=owner, batch_id=batch.pk):
        response = owner_client.post(
            f"/batches/{batch.pk}/process/", headers={"HX-Request": "true"}
        )
    assert response.status_code == 200
    assert b"load delay:2s" in response.content  # the idle driver asks again later
    assert calls == []


@pytest.mark.django_db
def test_the_page_without_javascript_says_why_nothing_ran(owner_client, owner, calls):
    batch = active_batch(owner)
    with slice_admission(user=owner, batch_id=batch.pk):
        response = owner_client.post(f"/batches/{batch.pk}/process/", follow=True)
    assert response.status_code == 200
    assert "already running for you" in response.content.decode()
    assert calls == []


@pytest.fixture
def owner_like():
    return type("User", (), {"pk": 1})()


@pytest.fixture
def other_like():
    return type("User", (), {"pk": 2})()
