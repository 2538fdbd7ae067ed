"""Issue 29, item 6: every state-changing route, page or API, goes through the one
ownership rule (`may_act_on`): a staff user who is not a superuser reads another user's
batch but changes nothing of it; a stranger gets 404; the owner acts."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from batches.models import Batch, BatchItem
from batches.tests.api_helpers import ApiClient

# POST routes that read the batch and change only the caller's own data.
# run_again creates the poster's own batch; regrade_progress reads a running "Grade again"
# (a reader's poll also advances the job the owner started, changing no setting).
READ_ONLY_POSTS = {"run_again", "/run-again", "regrade_progress"}


def _page_routes() -> list[tuple[str, str]]:
    """(name, path template) of every /batches/<pk>/... route of the URLconf."""
    routes = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and prefix == "batches/":
                template = str(pattern.pattern)
                if "<int:pk>" in template:
                    routes.append((pattern.name, "/batches/" + template))

    walk(get_resolver().url_patterns, "")
    return routes


def _api_routes() -> list[str]:
    """Every POST operation of the OpenAPI schema whose body names a batch."""
    from batchchat.api import api

    schema = api.get_openapi_schema()
    components = schema["components"]["schemas"]
    routes = []
    for path, operations in schema["paths"].items():
        post = operations.get("post")
        if not post or "requestBody" not in post:
            continue
        content = post["requestBody"]["content"].get("application/json")
        if not content:
            continue
        ref = content["schema"].get("$ref", "")
        properties = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        if "batchId" in properties:
            routes.append(path)
    return routes


def _fill(template: str, batch: Batch, other: Batch) -> str:
    return (
        template.replace("<int:pk>", str(batch.pk))
        .replace("<int:other>", str(other.pk))
        .replace("<str:fmt>", "csv")
    )


def _fingerprint(batch: Batch):
    fresh = Batch.objects.filter(pk=batch.pk).values().first()
    if fresh is None:
        return None
    fresh.pop("updated_at")
    items = list(
        BatchItem.objects.filter(batch=batch)
        .order_by("position")
        .values_list("status", "attempts", "judge_verdict")
    )
    return fresh, items


@pytest.fixture
def cancelled_batch(make_batch, owner):
    batch = make_batch(3, ai_provider="extractive", model="extractive")
    BatchItem.objects.filter(batch=batch, position=0).update(status=BatchItem.Status.FAILED)
    BatchItem.objects.filter(batch=batch).exclude(position=0).update(
        status=BatchItem.Status.CANCELLED
    )
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.CANCELLED, failed_items=1, judge_enabled=False
    )
    batch.refresh_from_db()
    return batch


@pytest.fixture
def plain_staff(django_user_model):
    return django_user_model.objects.create_user(
        username="plainstaff", password="pw-plain-123", is_staff=True, is_superuser=False
    )


def _page_form(batch: Batch) -> dict:
    item = batch.items.order_by("position").first()
    return {"item": str(item.pk), "items": [str(item.pk)], "judge_enabled": "on"}


def _api_body(batch: Batch, other: Batch) -> dict:
    return {
        "batchId": batch.pk,
        "otherBatchId": other.pk,
        "judgeEnabled": True,
        "seconds": 1,
        "budget": 1,
    }


def test_the_enumeration_finds_the_routes():
    names = {name for name, _ in _page_routes()}
    assert {"retry_items", "regrade", "cancel", "delete", "start", "retry"} <= names
    assert {"/api/batch/regrade", "/api/batch/cancel", "/api/batch/delete"} <= set(_api_routes())


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["staff", "stranger"])
def test_no_page_post_changes_another_users_batch(
    who, cancelled_batch, make_batch, plain_staff, other_user
):
    other = make_batch(1, ai_provider="extractive", model="extractive")
    client = Client()
    client.force_login(plain_staff if who == "staff" else other_user)
    for name, template in _page_routes():
        before = _fingerprint(cancelled_batch)
        response = client.post(_fill(template, cancelled_batch, other), _page_form(cancelled_batch))
        assert _fingerprint(cancelled_batch) == before, f"{who} changed it through {name}"
        if name in READ_ONLY_POSTS:
            continue
        allowed = {403, 404, 405} if who == "staff" else {404, 405}
        assert response.status_code in allowed, (name, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["staff", "stranger"])
def test_no_api_post_changes_another_users_batch(
    who, cancelled_batch, make_batch, plain_staff, other_user
):
    other = make_batch(1, ai_provider="extractive", model="extractive")
    api = ApiClient(plain_staff if who == "staff" else other_user)
    for path in _api_routes():
        before = _fingerprint(cancelled_batch)
        response = api.post(path.removeprefix("/api/"), _api_body(cancelled_batch, other))
        assert _fingerprint(cancelled_batch) == before, f"{who} changed it through {path}"
        if path in {f"/api/batch{name}" for name in READ_ONLY_POSTS}:
            continue
        allowed = {403, 404} if who == "staff" else {404}
        assert response.status_code in allowed, (path, response.status_code, response.content)


@pytest.mark.django_db
def test_the_owner_may_act_through_every_route(cancelled_batch, make_batch, owner):
    other = make_batch(1, ai_provider="extractive", model="extractive")
    client = Client()
    client.force_login(owner)
    for name, template in _page_routes():
        if name == "delete":
            continue
        response = client.post(_fill(template, cancelled_batch, other), _page_form(cancelled_batch))
        assert response.status_code not in {403, 404}, (name, response.status_code)
    api = ApiClient(owner)
    for path in _api_routes():
        if path.endswith("/delete"):
            continue
        response = api.post(path.removeprefix("/api/"), _api_body(cancelled_batch, other))
        assert response.status_code not in {403, 404}, (path, response.content)
    assert json.loads(api.post("batch/delete", {"batchId": other.pk}).content)
