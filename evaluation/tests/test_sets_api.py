"""GET /api/sets, /api/sets/{id} and /api/sets/{id}/grid (JSON, CSV, XLSX), with a token;
and the batch pages' links to the sets (issue 23 items 6 and 7)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse

from accounts.services import create_api_token
from evaluation.tests.grid_helpers import add_run, make_set
from evaluation.tests.test_set_grid import F, P, U, three_runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def bearer(owner):
    return {"HTTP_AUTHORIZATION": f"Bearer {create_api_token(user=owner, name='t')[1]}"}


def test_list_sets_with_counts_and_latest_pass_rate(owner, other_user, client, bearer):
    question_set, runs = three_runs(owner)
    make_set(other_user, 1, name="Someone else's")
    body = client.get("/api/sets", **bearer).json()
    assert body["total"] == 1 and body["pages"] == 1
    (listed,) = body["sets"]
    assert listed["setId"] == question_set.pk
    assert (listed["questionCount"], listed["runCount"]) == (4, 3)
    assert (listed["latestBatchId"], listed["latestPassRate"]) == (runs[2].pk, 0.4444)


def test_set_detail_has_runs_and_questions(owner, client, bearer):
    question_set, runs = three_runs(owner)
    body = client.get(f"/api/sets/{question_set.pk}", **bearer).json()
    assert [run["batchId"] for run in body["runs"]] == [run.pk for run in reversed(runs)]
    newest = body["runs"][0]
    assert (newest["number"], newest["repeats"], newest["model"]) == (3, 3, "extractive")
    assert newest["createdAt"] and newest["rates"]["verdictGraded"] == 9
    assert [q["position"] for q in body["questions"]] == [0, 1, 2, 3]
    assert body["questions"][1]["expectedAnswer"] == "Expected 1"


def test_grid_csv_has_a_row_per_question_and_a_column_per_run(owner, client, bearer):
    question_set, runs = three_runs(owner)
    response = client.get(f"/api/sets/{question_set.pk}/grid?format=csv", **bearer)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header[:3] == ["position", "question", "expected_answer"]
    assert [column.split(" ")[0] for column in header[3:]] == ["#3", "#2", "#1"]
    assert "Third" in header[3]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert rows[0][3:] == ["3/3", "pass", "pass"]
    assert rows[1][3:] == ["1/3", "pass", "pass"]
    assert rows[2][3:] == ["0/3", "fail", "fail"]
    assert rows[3][3:] == ["0/3", "ungraded", "ungraded"]


def test_grid_xlsx_is_the_same_table(owner, client, bearer):
    from openpyxl import load_workbook

    question_set, _runs = three_runs(owner)
    response = client.get(f"/api/sets/{question_set.pk}/grid?format=xlsx", **bearer)
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:3] == ["position", "question", "expected_answer"] and len(values[0]) == 6
    assert values[2][3:] == ["1/3", "pass", "pass"]
    assert len(values) == 5


def test_grid_formula_cells_are_neutralised(owner, client, bearer):
    question_set = make_set(owner, texts=["=HYPERLINK(1)"])
    add_run(question_set, [P])
    response = client.get(f"/api/sets/{question_set.pk}/grid?format=csv", **bearer)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text


def test_grid_bad_format_and_unknown_set(owner, client, bearer):
    question_set, _runs = three_runs(owner)
    bad = client.get(f"/api/sets/{question_set.pk}/grid?format=pdf", **bearer)
    assert bad.status_code == 400 and "format" in bad.json()["error"]["fields"]
    assert client.get("/api/sets/999999/grid", **bearer).status_code == 404
    assert client.get("/api/sets").status_code == 401


def test_staff_read_every_set_but_others_runs_stay_theirs(owner, staff_user, client):
    question_set, _runs = three_runs(owner)
    client.force_login(staff_user)
    assert client.get(reverse("evaluation:set", args=[question_set.pk])).status_code == 200
    assert len(client.get(f"/api/sets/{question_set.pk}/grid").json()["runs"]) == 3


def test_a_run_of_another_users_batch_is_not_shown_to_the_set_owner(owner, other_user, client):
    question_set = make_set(owner, 1)
    add_run(question_set, [P])
    add_run(question_set, [F], owner=other_user)  # e.g. staff ran it again
    client.force_login(owner)
    assert len(client.get(f"/api/sets/{question_set.pk}/grid").json()["runs"]) == 1


# --- Item 7: the batch pages link to their set --------------------------------------------


def test_batch_list_names_each_batch_set_and_filters_by_set(owner, owner_client):
    one = make_set(owner, 2, name="Passports")
    two = make_set(owner, 2, name="Taxes")
    a = add_run(one, [P, F], name="Passports week 1")
    b = add_run(two, [P, P], name="Taxes week 1")
    html = owner_client.get(reverse("batches:list")).content.decode()
    row = re.search(rf'<tr id="batch-{a.pk}">(.*?)</tr>', html, re.S).group(1)
    assert f'href="/sets/{one.pk}/">Passports</a>' in row
    filtered = owner_client.get(reverse("batches:list"), {"set": one.pk}).content.decode()
    assert f'id="batch-{a.pk}"' in filtered and f'id="batch-{b.pk}"' not in filtered
    assert "Runs of the question set “Passports”" in filtered
    # Not a number: the whole list.
    everything = owner_client.get(reverse("batches:list"), {"set": "x"}).content.decode()
    assert f'id="batch-{b.pk}"' in everything


def test_batch_list_filter_shows_nothing_of_another_users_set(owner, other_user, client):
    theirs = make_set(other_user, 1)
    add_run(theirs, [P])
    client.force_login(owner)
    html = client.get(reverse("batches:list"), {"set": theirs.pk}).content.decode()
    assert "No batch of yours is a run of this question set." in html


def test_batch_page_links_to_the_grid_and_rows_to_their_history(owner, owner_client):
    question_set = make_set(owner, 2)
    batch = add_run(question_set, [[P, F], [U, P]])
    html = owner_client.get(batch.get_absolute_url()).content.decode()
    assert f'<a href="/sets/{question_set.pk}/" id="batch-set-grid">' in html
    history = re.findall(rf'href="/sets/{question_set.pk}/questions/(\d+)/"', html)
    assert history == ["1", "1", "2", "2"]  # two repeats of each question
    rows = owner_client.get(
        reverse("batches:item_rows", args=[batch.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert f"/sets/{question_set.pk}/questions/2/" in rows
