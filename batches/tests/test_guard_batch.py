"""A batch whose rows hold personal information and abuse, uploaded through the API and
answered by the engine against fake search and AI servers: blocked rows are done with
guard_status=blocked and cost no provider request, nothing unredacted reaches the
servers, the logs or the database, and the results, pages and API show the outcome."""

from __future__ import annotations

import csv
import io
import json
import logging
import time

import pytest

from batches import engine
from batches.models import Batch, BatchItem
from batches.tests.api_helpers import ApiClient
from chats.models import Interaction
from chats.tests.fake_search import FakeSearchServer
from chats.tests.fake_servers import FakeAIServer

pytestmark = pytest.mark.django_db(transaction=True)

# Personal values of the upload: none may be found anywhere once the batch is answered.
SECRETS = ("613-555-0123", "046 454 286", "jean.roy@example.ca", "K1A 0B1", "Marie Tremblay")
ROWS = [
    {"Question": "How do I renew my passport?", "Team": "a"},
    {"Question": "My SIN is 046 454 286, is my file ok?", "Team": "b"},
    {"Question": "Call me at 613-555-0123 about my EI", "Team": "c"},
    {"Question": "What is form T4A?", "Team": "d"},
    {"Question": "Je m'appelle Marie Tremblay, où est mon chèque?", "Team": "e"},
    {"Question": "Write to jean.roy@example.ca about postal code K1A 0B1", "Team": "f"},
    {"Question": "This fucking form, where is it?", "Team": "g"},
    {"Question": "Can I contact you by e-mail?", "Team": "h"},
]
BLOCKED_ROWS = {1, 2, 4, 5, 6}


@pytest.fixture
def servers(settings):
    with FakeAIServer() as ai, FakeSearchServer() as search:
        ai.configure(settings)
        search.configure(settings)
        yield ai, search


def _create(api: ApiClient) -> int:
    response = api.post(
        "batch/create",
        {
            "name": "Guarded",
            "aiProvider": "openai",
            "model": "gpt-4o-mini",
            "searchProvider": "searxng",
            "rows": ROWS,
        },
    )
    assert response.status_code == 201, response.content
    return response.json()["batchId"]


def _run(batch_id: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = engine.process_for_duration(batch_id=batch_id, seconds=5, concurrency=3)
        if not result.remaining:
            return
    raise AssertionError("the batch did not finish in time")


def _database_text() -> str:
    """Every text column the pipeline writes, of every row, as one string."""
    parts: list[str] = []
    for values in Interaction.objects.values_list(
        "question", "redacted_question", "answer", "search_query", "search_results"
    ):
        parts.extend(json.dumps(value) if not isinstance(value, str) else value for value in values)
    for question, row, error in BatchItem.objects.values_list("question", "row", "error"):
        parts.extend([question, json.dumps(row, ensure_ascii=False), error])
    return "\n".join(parts)


def test_blocked_rows_are_done_without_any_provider_request(servers, owner, caplog):
    ai, search = servers
    caplog.set_level(logging.DEBUG)
    api = ApiClient(owner)
    batch_id = _create(api)
    # Create returns the estimate, built with the search step for a sample of the rows
    # (never a blocked one: the set of questions asked is checked below).
    estimate_searches = len(search.requests)
    assert estimate_searches == len(ROWS) - len(BLOCKED_ROWS)

    _run(batch_id)

    batch = Batch.objects.get(pk=batch_id)
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (len(ROWS), 0)
    items = list(batch.items.select_related("interaction").order_by("position"))
    for item in items:
        assert item.status == BatchItem.Status.DONE
        expected = "blocked" if item.position in BLOCKED_ROWS else "passed"
        assert item.interaction.guard_status == expected, item.position
    # One search and one AI request per answered row, none for a blocked row.
    answered = len(ROWS) - len(BLOCKED_ROWS)
    assert len(ai.requests) == answered
    assert len(search.requests) - estimate_searches == answered
    sent = "\n".join([*(r.raw for r in ai.requests), *(r.raw for r in search.requests)])
    asked = {r.query["q"] for r in search.requests}
    assert asked == {ROWS[i]["Question"] for i in range(len(ROWS)) if i not in BLOCKED_ROWS}
    stored = _database_text()
    for secret in SECRETS:
        assert secret not in sent
        assert secret not in stored
        assert secret not in caplog.text
    assert "fucking" not in sent and "fucking" not in stored

    # The batch's copies of a blocked question are the redacted text.
    sin_row = items[1]
    assert sin_row.question == "My SIN is [SIN], is my file ok?"
    assert sin_row.columns() == {"Question": "My SIN is [SIN], is my file ok?", "Team": "b"}
    assert sin_row.interaction.guard_reasons == ["sin"]
    assert sin_row.interaction.model == "guard"
    assert items[0].columns() == ROWS[0]  # a passed row is kept as uploaded

    # The API counts them; the export carries the columns.
    status = api.get("batch/status", {"batchId": batch_id}).json()
    assert (status["blockedItems"], status["redactedItems"]) == (len(BLOCKED_ROWS), 0)
    listed = api.get("batch/list").json()["batches"][0]
    assert listed["blockedItems"] == len(BLOCKED_ROWS)
    response = api.get("batch/results", {"batchId": batch_id, "format": "csv"})
    data = b"".join(response.streaming_content).decode("utf-8-sig")
    records = list(csv.DictReader(io.StringIO(data)))
    header = next(csv.reader(io.StringIO(data)))
    where = header.index("question")
    assert header[where : where + 4] == [
        "question",
        "redacted_question",
        "guard_status",
        "guard_reasons",
    ]
    assert [r["guard_status"] for r in records] == [
        "blocked" if i in BLOCKED_ROWS else "passed" for i in range(len(ROWS))
    ]
    assert records[5]["guard_reasons"] == "email, postal_code"
    assert records[5]["redacted_question"] == "Write to [EMAIL] about postal code [POSTAL CODE]"
    assert records[5]["input.Question"] == records[5]["redacted_question"]
    assert records[6]["guard_reasons"] == "profanity"
    assert records[0]["redacted_question"] == "" and records[0]["guard_reasons"] == ""
    for secret in SECRETS:
        assert secret not in data


def test_redact_policy_answers_the_redacted_rows(servers, owner, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    api = ApiClient(owner)
    batch_id = _create(api)

    _run(batch_id)

    items = list(Batch.objects.get(pk=batch_id).items.select_related("interaction"))
    statuses = [item.interaction.guard_status for item in sorted(items, key=lambda i: i.position)]
    # Abuse still blocks (GUARD_ABUSE_ACTION=block); personal information is redacted.
    assert statuses == [
        "passed",
        "redacted",
        "redacted",
        "passed",
        "redacted",
        "redacted",
        "blocked",
        "passed",
    ]
    assert len(ai.requests) == len(ROWS) - 1
    sent = "\n".join([*(r.raw for r in ai.requests), *(r.raw for r in search.requests)])
    assert "Call me at [PHONE] about my EI" in {r.query["q"] for r in search.requests}
    for secret in SECRETS:
        assert secret not in sent
        assert secret not in _database_text()
    assert api.get("batch/status", {"batchId": batch_id}).json()["redactedItems"] == 4


def test_store_original_keeps_the_upload_but_sends_only_redacted_text(servers, owner, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    settings.GUARD_STORE_ORIGINAL = True
    batch_id = _create(ApiClient(owner))

    _run(batch_id)

    item = BatchItem.objects.select_related("interaction").get(batch_id=batch_id, position=2)
    assert item.question == ROWS[2]["Question"]
    assert item.columns() == ROWS[2]
    assert item.interaction.question == ROWS[2]["Question"]
    assert item.interaction.redacted_question == "Call me at [PHONE] about my EI"
    sent = "\n".join([*(r.raw for r in ai.requests), *(r.raw for r in search.requests)])
    for secret in SECRETS:
        assert secret not in sent


def test_batch_page_counts_and_filters_guard_outcomes(servers, owner, owner_client):
    batch_id = _create(ApiClient(owner))
    _run(batch_id)
    url = f"/batches/{batch_id}/"

    page = owner_client.get(url).content.decode()
    assert 'id="guard-filter"' in page
    assert "5 blocked" in page and "0 redacted" in page
    # The progress bar has a blocked segment, and its legend counts them.
    assert "seg seg-blocked" in page and "Blocked by the guard: 5" in page
    listed = owner_client.get("/batches/").content.decode()
    assert "seg seg-blocked" in listed
    assert "Blocked: social insurance number" in page  # the row's note

    blocked = owner_client.get(url, {"guard": "blocked"}).content.decode()
    assert blocked.count('class="chat-link"') == len(BLOCKED_ROWS)
    assert "How do I renew my passport?" not in blocked
    redacted = owner_client.get(url, {"guard": "redacted"}).content.decode()
    assert redacted.count('class="chat-link"') == 0
    # An unknown outcome is ignored: every row.
    every = owner_client.get(url, {"guard": "nonsense"}).content.decode()
    assert every.count('class="chat-link"') == len(ROWS)


def test_upload_is_not_screened(servers, owner):
    """Screening happens when a row is answered: an upload stores the rows as given."""
    batch_id = _create(ApiClient(owner))
    item = BatchItem.objects.get(batch_id=batch_id, position=1)
    assert item.question == ROWS[1]["Question"] and item.columns() == ROWS[1]


def test_personal_values_in_a_row_url_are_redacted_everywhere(servers, owner, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    personal = "https://www.canada.ca/en/ei.html?email=jean.roy%40example.ca&tel=613-555-0123"
    clean = "https://www.canada.ca/en/ei.html?lang=en"
    rows = [
        {"Question": "When is EI paid?", "URL": personal, "Team": "a"},
        {"Question": "When is EI paid?", "URL": clean, "Team": "b"},
    ]
    api = ApiClient(owner)
    response = api.post(
        "batch/create",
        {
            "name": "URLs",
            "aiProvider": "openai",
            "model": "gpt-4o-mini",
            "searchProvider": "searxng",
            "rows": rows,
        },
    )
    assert response.status_code == 201, response.content
    batch_id = response.json()["batchId"]

    _run(batch_id)

    sent = "\n".join([*(r.raw for r in ai.requests), *(r.raw for r in search.requests)])
    redacted = "https://www.canada.ca/en/ei.html?email=[EMAIL]&tel=[PHONE]"
    items = list(BatchItem.objects.filter(batch_id=batch_id).order_by("position"))
    assert items[0].referring_url == redacted
    assert items[0].columns() == {"Question": "When is EI paid?", "URL": redacted, "Team": "a"}
    assert items[0].question == "When is EI paid?"  # the question itself passed
    assert items[1].referring_url == clean and items[1].columns() == rows[1]
    response = api.get("batch/results", {"batchId": batch_id, "format": "csv"})
    data = b"".join(response.streaming_content).decode("utf-8-sig")
    records = list(csv.DictReader(io.StringIO(data)))
    assert records[0]["guard_status"] == "redacted"
    assert records[0]["guard_fields"] == "url:email, url:phone"
    assert records[0]["referring_url"] == redacted
    assert records[1]["guard_status"] == "passed" and records[1]["guard_fields"] == ""
    assert records[1]["referring_url"] == clean
    for secret in ("jean.roy", "613-555-0123"):
        assert secret not in sent
        assert secret not in data
        assert secret not in _database_text()
        assert not Interaction.objects.filter(referring_url__contains=secret).exists()
