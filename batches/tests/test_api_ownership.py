"""Ownership: through every API route, another user's batch does not exist (404, empty
lists, nothing changed); staff see and act on all batches."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches.models import Batch, BatchItem
from batches.tests.api_helpers import ApiClient, api_routes, error_of
from batches.tests.factories import BatchFactory, BatchItemFactory

pytestmark = pytest.mark.django_db


ROWS = [{"question": "Mine?"}]


@pytest.fixture
def owners_batch(owner) -> Batch:
    """A finished batch of the owner's with one failed row: every action applies to it."""
    batch = BatchFactory(
        uploader=owner,
        name="Owner's secret batch",
        search_provider="none",
        status=Batch.Status.COMPLETED,
        total_items=2,
        processed_items=1,
        failed_items=1,
        last_processed_index=2,
    )
    BatchItemFactory(batch=batch, position=0, status=BatchItem.Status.DONE)
    BatchItemFactory(batch=batch, position=1, status=BatchItem.Status.FAILED, error="x")
    return batch


def snapshot(batch: Batch) -> tuple:
    batch.refresh_from_db()
    items = tuple(batch.items.order_by("position").values_list("status", "attempts", "error"))
    return (batch.status, batch.processed_items, batch.failed_items, batch.name, items)


def _batch_id_call(method: str, path: str, **extra):
    def call(api: ApiClient, batch_id: int):
        if method == "get":
            return api.get(path, {"batchId": batch_id, **extra})
        return api.post(path, {"batchId": batch_id, **extra})

    return call


# Every API route, called by someone who is not the batch's owner. test_every_route_is_walked
# fails when a route is added without a line here.
BATCH_ROUTES = {
    "/api/batch/process-for-duration": _batch_id_call("post", "batch/process-for-duration"),
    "/api/batch/start": _batch_id_call("post", "batch/start"),
    "/api/batch/cancel": _batch_id_call("post", "batch/cancel"),
    "/api/batch/retry-failed": _batch_id_call("post", "batch/retry-failed"),
    "/api/batch/delete": _batch_id_call("post", "batch/delete"),
    "/api/batch/status": _batch_id_call("get", "batch/status"),
    "/api/batch/results": _batch_id_call("get", "batch/results", format="csv"),
    "/api/batch/results?format=json": _batch_id_call("get", "batch/results", format="json"),
    "/api/batch/results?format=xlsx": _batch_id_call("get", "batch/results", format="xlsx"),
    "/api/batch/regrade": _batch_id_call("post", "batch/regrade"),
    "/api/batch/estimate": _batch_id_call("get", "batch/estimate"),
    "/api/batch/budget": _batch_id_call("post", "batch/budget", budget=1),
    "/api/batch/run-again": _batch_id_call("post", "batch/run-again"),
    # Reviews (evaluation.review_api).
    "/api/batch/share": _batch_id_call("post", "batch/share", username="other"),
    "/api/batch/unshare": _batch_id_call("post", "batch/unshare", username="other"),
    "/api/batch/shares": _batch_id_call("get", "batch/shares"),
    "/api/batch/review": _batch_id_call("post", "batch/review", row=1, verdict="correct"),
    "/api/batch/reviews": lambda api, batch_id: api.upload(
        f"batch/reviews?batchId={batch_id}", {"file": SimpleUploadedFile("r.csv", b"row_key\n")}
    ),
    "/api/batch/agreement": _batch_id_call("get", "batch/agreement"),
    # The other's batch as either side of a comparison.
    "/api/batch/compare": lambda api, batch_id: api.get(
        "batch/compare", {"batchId": batch_id, "otherBatchId": batch_id}
    ),
}
OTHER_ROUTES = {
    "/api/batch/list",
    "/api/batch/create",
    "/api/batch/preview",
    "/api/providers",
    # A set's route: another user's set is 404 (evaluation/tests/test_repeats_runs.py).
    "/api/sets/{set_id}/run",
    # A question set's routes: another user's set is 404 there too, walked in
    # evaluation/tests/test_sets_api.py (test_another_users_set_is_404_on_pages_and_api).
    "/api/sets",
    "/api/sets/{set_id}",
    "/api/sets/{set_id}/grid",
}


def test_every_route_is_walked():
    walked = {route.split("?")[0] for route in BATCH_ROUTES} | OTHER_ROUTES
    assert walked == api_routes()


def test_another_user_reaches_nothing_of_the_owners(owners_batch, other_user):
    intruder = ApiClient(other_user)
    before = snapshot(owners_batch)

    for route, call in BATCH_ROUTES.items():
        response = call(intruder, owners_batch.pk)
        assert response.status_code == 404, (route, response.content)
        error = error_of(response)
        # The same answer as for a batch that does not exist at all.
        assert error == {
            "code": "not_found",
            "message": f"No batch with batchId {owners_batch.pk}.",
        }
        assert "secret" not in response.content.decode()

    listing = intruder.get("batch/list").json()
    assert listing["batches"] == [] and listing["total"] == 0
    for status in Batch.Status.values:
        assert intruder.get("batch/list", {"status": status}).json()["total"] == 0

    # Creating is allowed, but makes the intruder's own batch; still nothing of the owner's.
    created = intruder.post(
        "batch/create", {"aiProvider": "extractive", "searchProvider": "none", "rows": ROWS}
    )
    assert created.status_code == 201
    assert Batch.objects.get(pk=created.json()["batchId"]).uploader == other_user
    assert [b["batchId"] for b in intruder.get("batch/list").json()["batches"]] == [
        created.json()["batchId"]
    ]
    providers = intruder.get("providers")
    assert providers.status_code == 200 and "secret" not in providers.content.decode()

    assert snapshot(owners_batch) == before


def test_a_missing_batch_answers_exactly_like_someone_elses(owner, owners_batch, other_user):
    intruder = ApiClient(other_user)
    missing_id = owners_batch.pk + 1000
    for route, call in BATCH_ROUTES.items():
        theirs, missing = call(intruder, owners_batch.pk), call(intruder, missing_id)
        assert (theirs.status_code, missing.status_code) == (404, 404), route
        assert error_of(theirs)["message"].replace(str(owners_batch.pk), "N") == error_of(missing)[
            "message"
        ].replace(str(missing_id), "N")


def test_staff_see_and_act_on_every_batch(owners_batch, staff_user, other_user):
    BatchFactory(uploader=other_user, name="Other's batch")
    staff = ApiClient(staff_user)

    names = {b["name"] for b in staff.get("batch/list").json()["batches"]}
    assert names == {"Owner's secret batch", "Other's batch"}
    assert staff.get("batch/status", {"batchId": owners_batch.pk}).status_code == 200
    results = staff.get("batch/results", {"batchId": owners_batch.pk, "format": "json"})
    assert results.status_code == 200
    retried = staff.post("batch/retry-failed", {"batchId": owners_batch.pk})
    assert retried.status_code == 200 and retried.json()["status"] == "queued"


def test_the_owner_reaches_their_batch_through_every_route(owner, owners_batch):
    mine = ApiClient(owner)
    for route, call in BATCH_ROUTES.items():
        if route.endswith("/delete"):
            continue
        response = call(mine, owners_batch.pk)
        # 200 (201 for run-again), or 409 where the batch's state forbids the action, or 422
        # where the body names what this batch lacks (a user, an answered row, a file's
        # key); never 404.
        assert response.status_code in (200, 201, 409, 422), (route, response.content)
    assert mine.post("batch/delete", {"batchId": owners_batch.pk}).status_code == 200
