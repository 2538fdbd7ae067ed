"""Who reaches what (issue 24 item 6): every batch, chat and review route, pages and API,
for the owner, a reviewer (the batch shared with them, or its whole question set), a
stranger and staff (a reader without superuser rights). A reviewer reads, exports and
reviews; every other action answers 404, as for a stranger. Staff keep what they had:
read everything, act on nothing of others' (403)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver

from batches.export import stream_csv
from batches.models import Batch
from batches.tests.api_helpers import ApiClient
from chats.models import Interaction
from evaluation.models import Run, Share
from evaluation.sharing import share_with
from evaluation.tests.test_evaluation_views import graded

pytestmark = pytest.mark.django_db

ROLES = ("owner", "reviewer", "set_reviewer", "stranger", "staff")
OK = "ok"  # any answer but 403 and 404
# What each role gets, in ROLES order.
READ = (OK, OK, OK, 404, OK)
REVIEW = (OK, OK, OK, 404, 403)
ACT = (OK, 404, 404, 404, 403)
RUN_AGAIN = (OK, 404, 404, 404, OK)
# A set's pages: its owner, the reviewers of the whole set and staff (a reviewer of one
# run only is not shown the set).
SET_READ = (OK, 404, OK, 404, OK)  # staff could already run any batch again as their own


@pytest.fixture
def world(owner, other_user, django_user_model):
    batch = graded(owner, ["Answer one.", "Answer two."], expected=["x", "y"])
    batch.status = Batch.Status.COMPLETED
    batch.save(update_fields=["status"])
    reviewer = django_user_model.objects.create_user(username="reviewer", password="pw-r-123")
    set_reviewer = django_user_model.objects.create_user(username="setrev", password="pw-s-123")
    staff = django_user_model.objects.create_user(
        username="support", password="pw-support-123", is_staff=True
    )
    share_with(username="reviewer", shared_by=owner, batch=batch)
    question_set = Run.objects.get(batch=batch).question_set
    share_with(username="setrev", shared_by=owner, question_set=question_set)
    item = batch.items.select_related("chat").get(position=0)
    users = {
        "owner": owner,
        "reviewer": reviewer,
        "set_reviewer": set_reviewer,
        "stranger": other_user,
        "staff": staff,
    }
    return {"batch": batch, "item": item, "set": question_set, "users": users}


def _csv_of(batch) -> bytes:
    return b"".join(stream_csv(batch))


# (name, method, url template, expected per role). {b} batch, {i} item, {c} chat, {s} set.
PAGES = [
    ("batches:detail", "get", "/batches/{b}/", READ),
    ("batches:progress", "htmx", "/batches/{b}/progress/", READ),
    ("batches:item_rows", "htmx", "/batches/{b}/rows/", READ),
    ("batches:download", "get", "/batches/{b}/download/csv/", READ),
    ("batches:download", "get", "/batches/{b}/download/xlsx/", READ),
    ("batches:retry_items", "post", "/batches/{b}/retry-rows/", ACT),
    ("batches:start", "post", "/batches/{b}/start/", ACT),
    ("batches:process", "post", "/batches/{b}/process/", ACT),
    ("batches:cancel", "post", "/batches/{b}/cancel/", ACT),
    ("batches:retry", "post", "/batches/{b}/retry/", ACT),
    ("batches:delete", "post", "/batches/{b}/delete/", ACT),
    ("evaluation:regrade", "post", "/batches/{b}/regrade/", ACT),
    ("evaluation:own_set", "post", "/batches/{b}/own-set/", ACT),
    ("evaluation:regrade_cancel", "post", "/batches/{b}/regrade/cancel/", ACT),
    ("evaluation:regrade_progress", "post", "/batches/{b}/regrade/progress/", READ),
    ("evaluation:rejudge", "post", "/batches/{b}/rejudge/", ACT),
    ("evaluation:run_again", "get", "/batches/{b}/run-again/", RUN_AGAIN),
    ("evaluation:run_again", "post", "/batches/{b}/run-again/", RUN_AGAIN),
    ("evaluation:compare_pick", "get", "/batches/{b}/compare/?other={b}", READ),
    ("evaluation:compare", "get", "/batches/{b}/compare/{b}/", READ),
    ("evaluation:compare_download", "get", "/batches/{b}/compare/{b}/download/csv/", READ),
    ("review:mode", "get", "/batches/{b}/review/", REVIEW),
    ("review:save", "post", "/batches/{b}/review/{i}/", REVIEW),
    ("review:promote", "post", "/batches/{b}/review/{i}/promote/", ACT),
    ("review:upload", "post", "/batches/{b}/reviews/upload/", REVIEW),
    ("review:apply", "post", "/batches/{b}/reviews/apply/", REVIEW),
    ("review:share", "post", "/batches/{b}/share/", ACT),
    ("review:set_share", "post", "/sets/{s}/share/", ACT),
    ("batches:budget", "post", "/batches/{b}/budget/", ACT),
    ("evaluation:set", "get", "/sets/{s}/", SET_READ),
    ("evaluation:question_history", "get", "/sets/{s}/questions/1/", SET_READ),
    ("chats:detail", "get", "/chats/{c}/", READ),
    ("chats:transcript", "htmx", "/chats/{c}/transcript/", READ),
    ("chats:ask", "post", "/chats/{c}/ask/", ACT),
]
# Routes of an object that are not in PAGES, and why.
NOT_OBJECT_ROUTES = {"batches:list", "batches:rows", "chats:overrides", "evaluation:set_list"}


def _named_routes() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and namespace in (
                "batches",
                "evaluation",
                "review",
                "chats",
            ):
                names.add(f"{namespace}:{pattern.name}")

    walk(get_resolver().url_patterns, "")
    return names


def test_every_page_route_is_in_the_table():
    assert {name for name, *_rest in PAGES} | NOT_OBJECT_ROUTES >= _named_routes()


def _body(name: str, world) -> dict:
    if name == "review:save":
        return {"verdict": "correct", "notes": "fine"}
    if name in ("review:share", "review:set_share"):
        return {"username": "stranger-to-be"}
    if name == "review:upload":
        return {"file": SimpleUploadedFile("r.csv", _csv_of(world["batch"]))}
    if name == "chats:ask":
        return {"question": "And then?"}
    return {}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "template", "expected"), PAGES)
def test_page_access(client, world, role, name, method, template, expected):
    expect = expected[ROLES.index(role)]
    client.force_login(world["users"][role])
    url = template.format(
        b=world["batch"].pk, i=world["item"].pk, c=world["item"].chat.chat_id, s=world["set"].pk
    )
    if method == "post":
        response = client.post(url, _body(name, world))
    else:
        headers = {"HX-Request": "true"} if method == "htmx" else {}
        response = client.get(url, headers=headers)
    if expect == OK:
        assert response.status_code not in (403, 404), (role, url, response.status_code)
    else:
        assert response.status_code == expect, (role, url, response.status_code)


def _api_call(api: ApiClient, route: str, world):
    batch_id, row = world["batch"].pk, 1
    calls = {
        "status": lambda: api.get("batch/status", {"batchId": batch_id}),
        "results": lambda: api.get("batch/results", {"batchId": batch_id, "format": "xlsx"}),
        "compare": lambda: api.get(
            "batch/compare", {"batchId": batch_id, "otherBatchId": batch_id}
        ),
        "agreement": lambda: api.get("batch/agreement", {"batchId": batch_id}),
        "review": lambda: api.post(
            "batch/review", {"batchId": batch_id, "row": row, "verdict": "correct"}
        ),
        "reviews": lambda: api.upload(
            f"batch/reviews?batchId={batch_id}",
            {"file": SimpleUploadedFile("r.csv", _csv_of(world["batch"]))},
        ),
        "start": lambda: api.post("batch/start", {"batchId": batch_id}),
        "cancel": lambda: api.post("batch/cancel", {"batchId": batch_id}),
        "retry-failed": lambda: api.post("batch/retry-failed", {"batchId": batch_id}),
        "delete": lambda: api.post("batch/delete", {"batchId": batch_id}),
        "process-for-duration": lambda: api.post(
            "batch/process-for-duration", {"batchId": batch_id}
        ),
        "regrade": lambda: api.post("batch/regrade", {"batchId": batch_id}),
        "run-again": lambda: api.post("batch/run-again", {"batchId": batch_id}),
        "share": lambda: api.post("batch/share", {"batchId": batch_id, "username": "other"}),
        "unshare": lambda: api.post("batch/unshare", {"batchId": batch_id, "username": "x"}),
        "shares": lambda: api.get("batch/shares", {"batchId": batch_id}),
        "set-share": lambda: api.post(
            "batch/share", {"questionSetId": world["set"].pk, "username": "other"}
        ),
    }
    return calls[route]()


API = [
    ("status", READ),
    ("results", READ),
    ("compare", READ),
    ("agreement", READ),
    ("review", REVIEW),
    ("reviews", REVIEW),
    ("start", ACT),
    ("cancel", ACT),
    ("retry-failed", ACT),
    ("delete", ACT),
    ("process-for-duration", ACT),
    ("regrade", ACT),
    ("run-again", RUN_AGAIN),
    ("share", ACT),
    ("unshare", ACT),
    ("shares", ACT),
    ("set-share", ACT),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("route", "expected"), API)
def test_api_access(world, role, route, expected):
    expect = expected[ROLES.index(role)]
    response = _api_call(ApiClient(world["users"][role]), route, world)
    if expect == OK:
        assert response.status_code not in (403, 404), (role, route, response.content)
    else:
        assert response.status_code == expect, (role, route, response.content)


def test_the_reviewer_sees_the_shared_batch_in_the_list_and_reviews_it(world):
    reviewer = ApiClient(world["users"]["reviewer"])
    listed = reviewer.get("batch/list").json()["batches"]
    assert [batch["batchId"] for batch in listed] == [world["batch"].pk]
    assert ApiClient(world["users"]["stranger"]).get("batch/list").json()["total"] == 0
    response = reviewer.post(
        "batch/review", {"batchId": world["batch"].pk, "row": 2, "verdict": "incorrect"}
    )
    assert response.status_code == 200
    assert response.json()["reviewedBy"] == "reviewer"
    assert Interaction.objects.filter(review_verdict="incorrect").count() == 1


def test_a_set_share_covers_later_runs_and_unsharing_ends_it(world, client):
    from batches import services

    owner = world["users"]["owner"]
    later = services.run_again(batch=world["batch"], uploader=owner)
    set_reviewer = ApiClient(world["users"]["set_reviewer"])
    assert set_reviewer.get("batch/status", {"batchId": later.pk}).status_code == 200
    # Only the batch's own reviewer: not the later run.
    reviewer = ApiClient(world["users"]["reviewer"])
    assert reviewer.get("batch/status", {"batchId": later.pk}).status_code == 404

    response = ApiClient(owner).post(
        "batch/unshare", {"questionSetId": world["set"].pk, "username": "setrev"}
    )
    assert response.json() == {"removed": 1}
    assert set_reviewer.get("batch/status", {"batchId": later.pk}).status_code == 404
    assert not Share.objects.filter(user__username="setrev").exists()


def test_share_answers_the_reviewers_and_refuses_unknown_users(world):
    owner = ApiClient(world["users"]["owner"])
    response = owner.get("batch/shares", {"batchId": world["batch"].pk})
    assert {share["username"] for share in response.json()["shares"]} == {"reviewer", "setrev"}
    unknown = owner.post("batch/share", {"batchId": world["batch"].pk, "username": "nobody"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["fields"]["username"]
    both = owner.post(
        "batch/share",
        {"batchId": world["batch"].pk, "questionSetId": world["set"].pk, "username": "other"},
    )
    assert both.status_code == 400  # one of them, not both


def test_the_reviewer_page_hides_the_owners_actions(client, world):
    client.force_login(world["users"]["reviewer"])
    page = client.get(f"/batches/{world['batch'].pk}/").content.decode()
    assert "/run-again/" not in page and "/delete/" not in page and "/share/" not in page
    assert f"/batches/{world['batch'].pk}/review/" in page
    client.force_login(world["users"]["owner"])
    page = client.get(f"/batches/{world['batch'].pk}/").content.decode()
    assert 'data-reviewer="reviewer"' in page and 'id="share-form"' in page


def test_batch_for_gives_what_batches_for_gives_to_every_role(world):
    """batches.selectors.batch_for reads the batch by its key and asks the sharing rules
    apart: for each role, with and without `shared`, the same answer as the one query."""
    from batches.selectors import batch_for, batches_for

    batch = world["batch"]
    for role, user in world["users"].items():
        for shared in (True, False):
            expected = batches_for(user, shared=shared).filter(pk=batch.pk).first()
            assert batch_for(user, batch.pk, shared=shared) == expected, (role, shared)
        assert batch_for(user, batch.pk + 1000) is None, role
