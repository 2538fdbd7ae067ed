"""Issue 29, item 4: upload drafts have a per-user quota (count and bytes), expire when
used, and are deleted by the worker and Celery beat."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum
from django.db.models.functions import Length
from django.utils import timezone

from batches import services, tasks
from batches.models import DRAFT_MAX_AGE, UploadDraft
from batches.worker import Worker

FILE = "Ask,Page\nHow do I renew?,https://x.example/p\n"


def _preview(api, text: str = FILE):
    upload = SimpleUploadedFile("q.csv", text.encode(), content_type="text/csv")
    response = api.upload("batch/preview", {"file": upload})
    assert response.status_code == 200, response.content
    return response.json()["uploadId"]


@pytest.mark.django_db
def test_drafts_past_the_count_quota_delete_the_users_oldest(api, owner, other_user, settings):
    settings.UPLOAD_DRAFTS_PER_USER = 3
    theirs = UploadDraft.objects.create(owner=other_user, filename="x.csv", data=b"q\n")
    ids = [_preview(api) for _ in range(15)]

    kept = set(UploadDraft.objects.filter(owner=owner).values_list("pk", flat=True))
    assert kept == set(ids[-3:])
    assert UploadDraft.objects.filter(pk=theirs.pk).exists()  # another user's stays


@pytest.mark.django_db
def test_drafts_past_the_byte_quota_delete_the_users_oldest(api, owner, settings):
    text = FILE + "".join(f"Question {n}?,https://x.example/{n}\n" for n in range(2_000))
    settings.UPLOAD_DRAFT_BYTES_PER_USER = 3 * len(text.encode())
    for _ in range(10):
        newest = _preview(api, text)

    stored = UploadDraft.objects.filter(owner=owner).aggregate(total=Sum(Length("data")))
    assert stored["total"] <= settings.UPLOAD_DRAFT_BYTES_PER_USER
    assert UploadDraft.objects.filter(pk=newest).exists()
    print(f"\n10 previews of {len(text):,} bytes stored {stored['total']:,} bytes")


@pytest.mark.django_db
def test_an_expired_draft_creates_no_batch(api, owner):
    upload_id = _preview(api)
    UploadDraft.objects.filter(pk=upload_id).update(
        created_at=timezone.now() - DRAFT_MAX_AGE - timedelta(minutes=1)
    )
    response = api.post(
        "batch/create",
        {"uploadId": upload_id, "aiProvider": "extractive", "columns": {"question": "Ask"}},
    )
    assert response.status_code == 404


@pytest.mark.django_db
def test_an_expired_draft_is_not_shown_in_the_chooser(owner_client, owner):
    draft = UploadDraft.objects.create(
        owner=owner,
        filename="q.csv",
        data=FILE.encode(),
        created_at=timezone.now() - timedelta(days=30),
    )
    response = owner_client.post("/batches/", {"draft": draft.pk, "question": "Ask"})
    assert "How do I renew?" not in response.content.decode()


def _old_and_new(owner):
    old = UploadDraft.objects.create(
        owner=owner, filename="o.csv", data=b"q\n", created_at=timezone.now() - timedelta(days=2)
    )
    new = UploadDraft.objects.create(owner=owner, filename="n.csv", data=b"q\n")
    return old, new


@pytest.mark.django_db
def test_celery_beat_deletes_expired_drafts(owner, settings):
    old, new = _old_and_new(owner)
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "batches.tasks.delete_expired_drafts" in schedule

    tasks.delete_expired_drafts()

    assert list(UploadDraft.objects.values_list("pk", flat=True)) == [new.pk]


@pytest.mark.django_db(transaction=True)
def test_the_worker_deletes_expired_drafts(owner):
    old, new = _old_and_new(owner)
    worker = Worker(poll_seconds=0.05, heartbeat_seconds=0.05, slice_seconds=0.1)
    done = threading.Event()
    thread = threading.Thread(target=worker._heartbeat_loop, args=(done,))
    thread.start()
    try:
        for _ in range(100):
            if not UploadDraft.objects.filter(pk=old.pk).exists():
                break
            threading.Event().wait(0.05)
    finally:
        done.set()
        thread.join(5)
    assert list(UploadDraft.objects.values_list("pk", flat=True)) == [new.pk]
    assert services.delete_expired_drafts() == 0


CHOOSER = {
    "ai_model": "extractive::extractive",
    "search_provider": "none",
    "page_language": "en",
}


@pytest.mark.django_db
def test_reposting_a_draft_never_parses_its_file_again(owner_client, monkeypatch):
    """Issue 29 item 1: the chooser's preview is parsed once, when the draft is saved."""
    from batches.tests.view_helpers import LIST_URL, csv_file, upload_data

    owner_client.post(LIST_URL, upload_data(csv_file(FILE)))
    draft = UploadDraft.objects.get()
    assert draft.preview["columns"] == ["Ask", "Page"]
    from batches.uploads import files

    calls = []
    real = files.parse_csv
    monkeypatch.setattr(files, "parse_csv", lambda *args: calls.append(args) or real(*args))
    for _ in range(3):  # no question chosen: the form is refused, the draft kept
        response = owner_client.post(LIST_URL, {"draft": draft.pk, **CHOOSER})
        assert response.status_code == 400
        assert "How do I renew?" in response.content.decode()
    assert calls == []


@pytest.mark.django_db
def test_the_chooser_page_stays_small_for_the_longest_headers(owner_client):
    """Issue 29 item 3: 500 headers of the longest length allowed, long cells: the page is
    under 1 MB (headers and cells cut short, options by position)."""
    from batches.tests.view_helpers import LIST_URL, csv_file, upload_data
    from batches.uploads.limits import MAX_COLUMNS, MAX_HEADER_CHARS

    headers = [f"{n}" + "h" * (MAX_HEADER_CHARS - 4) for n in range(MAX_COLUMNS)]
    rows = "".join(",".join(["c" * 3_000] * MAX_COLUMNS) + "\n" for _ in range(5))
    response = owner_client.post(LIST_URL, upload_data(csv_file(",".join(headers) + "\n" + rows)))
    assert response.status_code == 200
    assert 'id="columns-preview"' in response.content.decode()
    assert len(response.content) <= 1_000_000


@pytest.mark.django_db
def test_a_header_past_the_limit_is_refused_at_read_time():
    from batches.errors import UploadError
    from batches.uploads import parse_upload
    from batches.uploads.limits import MAX_HEADER_CHARS

    data = ("question," + "h" * (MAX_HEADER_CHARS + 1) + "\nQ?,x\n").encode()
    with pytest.raises(UploadError) as refused:
        parse_upload(data=data, filename="x.csv")
    assert refused.value.code == "header_too_long"
    assert f"{MAX_HEADER_CHARS:,}" in refused.value.message
