"""The question set pages (issue 23 items 4, 5, 7): the set list, the grid of questions ×
runs with repeats (k/k, pass@k, pass^k), its filters, search and paging, the trend
chart, a question's history with its word diff, ownership, and constant queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluation import set_views
from evaluation.tests.grid_helpers import add_run, make_set

pytestmark = pytest.mark.django_db

P, F, U = "pass", "fail", "ungraded"


def three_runs(owner):
    """Questions 1-4 over three runs, the newest with repeats=3:
    q1 pass, pass, 3/3 -> steady
    q2 pass, pass, 1/3 fail -> regressed (and flaky)
    q3 fail, fail, 0/3 -> always failing
    q4 ungraded everywhere -> ungraded
    """
    question_set = make_set(owner, 4)
    first = add_run(question_set, [P, P, F, U], name="First", answers=["a", "b", "c", "d"])
    second = add_run(
        question_set,
        [P, P, F, U],
        name="Second",
        answers=["a", "The old answer about <passports>", "c", "d"],
    )
    third = add_run(
        question_set,
        [[P, P, P], [P, F, F], [F, F, F], [U, U, U]],
        name="Third",
        answers=[
            ["a"] * 3,
            ["The new answer about <passports>", "x", "y"],
            ["c"] * 3,
            ["d"] * 3,
        ],
    )
    return question_set, (first, second, third)


def cells(html: str, question: int) -> list[str]:
    """The text of each run cell in question `question`'s row (newest run first)."""
    row = re.search(rf'<tr id="question-{question}">(.*?)</tr>', html, re.S).group(1)
    found = re.findall(r'<td class="grid-cell cell-(\w+)"', row)
    return found


def test_grid_shows_three_runs_with_k_of_k_cells_and_pass_at_k(owner, owner_client):
    question_set, (first, second, third) = three_runs(owner)
    response = owner_client.get(reverse("evaluation:set", args=[question_set.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    # Newest run first; each header names its run and links to its batch.
    heads = re.findall(r'<th scope="col" class="run-head" id="run-(\d+)">', html)
    assert heads == [str(third.pk), str(second.pk), str(first.pk)]
    assert "3 answers per question" in html
    assert cells(html, 1) == ["pass", "pass", "pass"]
    assert cells(html, 2) == ["partial", "pass", "pass"]
    assert cells(html, 3) == ["fail", "fail", "fail"]
    assert cells(html, 4) == ["ungraded", "ungraded", "ungraded"]
    row2 = re.search(r'<tr id="question-2">(.*?)</tr>', html, re.S).group(1)
    assert "1/3" in row2 and "pass@3 ✓ · pass^3 ✗" in row2
    row1 = re.search(r'<tr id="question-1">(.*?)</tr>', html, re.S).group(1)
    assert "3/3" in row1 and "pass@3 ✓ · pass^3 ✓" in row1
    row3 = re.search(r'<tr id="question-3">(.*?)</tr>', html, re.S).group(1)
    assert "0/3" in row3 and "pass@3 ✗ · pass^3 ✗" in row3
    # Every repeat links to its chat.
    chat_links = re.findall(r'href="/chats/([^/]+)/"', row2)
    assert len(chat_links) == 5  # three repeats, then one answer in each older run
    # Pass rate in the header: the third run passed 4 of 9 graded answers.
    assert "pass rate: 44 %" in html


def test_api_grid_agrees_with_the_page(owner, owner_client):
    question_set, runs = three_runs(owner)
    html = owner_client.get(reverse("evaluation:set", args=[question_set.pk])).content.decode()
    grid = owner_client.get(f"/api/sets/{question_set.pk}/grid").json()
    assert [run["batchId"] for run in grid["runs"]] == [run.pk for run in reversed(runs)]
    assert grid["runs"][0]["repeats"] == 3 and grid["runs"][0]["rates"]["passRate"] == 0.4444
    states = {"pass": "pass", "fail": "fail", "partial": "partial", "ungraded": "ungraded"}
    for row in grid["rows"]:
        assert row["question"].startswith("Question number")
        page_cells = cells(html, row["position"] + 1)
        for run, page_state in zip(grid["runs"], page_cells, strict=True):
            cell = row["runs"][str(run["batchId"])]
            verdicts = cell["verdicts"]
            passes = verdicts.count("pass")
            state = (
                "pass"
                if passes == len(verdicts)
                else "partial"
                if passes
                else ("fail" if "fail" in verdicts else "ungraded")
            )
            assert states[page_state] == state
            assert cell["passAtK"] == (
                passes > 0 if ("pass" in verdicts or "fail" in verdicts) else None
            )
    q2 = grid["rows"][1]["runs"][str(runs[2].pk)]
    assert (q2["verdicts"], q2["passAtK"], q2["passAllK"], q2["passes"], q2["k"]) == (
        ["pass", "fail", "fail"],
        True,
        False,
        1,
        3,
    )
    q1 = grid["rows"][0]["runs"][str(runs[2].pk)]
    assert (q1["passAtK"], q1["passAllK"]) == (True, True)
    q4 = grid["rows"][3]["runs"][str(runs[2].pk)]
    assert (q4["passAtK"], q4["passAllK"]) == (None, None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("regressed", [2]),
        ("flaky", [2]),
        ("always_failing", [3]),
        ("ungraded", [4]),
        ("", [1, 2, 3, 4]),
    ],
)
def test_filters_find_the_right_questions(owner, owner_client, name, expected):
    question_set, _runs = three_runs(owner)
    url = reverse("evaluation:set", args=[question_set.pk])
    html = owner_client.get(url, {"filter": name}).content.decode()
    shown = [int(n) for n in re.findall(r'<tr id="question-(\d+)">', html)]
    assert shown == expected


def test_flaky_across_runs_and_regressed_single_answers(owner, owner_client):
    question_set = make_set(owner, 3)
    add_run(question_set, [P, F, P])
    add_run(question_set, [F, P, P])
    add_run(question_set, [P, P, F])  # q3 passed in the previous run, fails now
    url = reverse("evaluation:set", args=[question_set.pk])

    def shown(name):
        html = owner_client.get(url, {"filter": name}).content.decode()
        return [int(n) for n in re.findall(r'<tr id="question-(\d+)">', html)]

    assert shown("flaky") == [1, 2, 3]
    assert shown("regressed") == [3]
    assert shown("always_failing") == []
    html = owner_client.get(url).content.decode()
    assert 'data-filter="regressed">Regressed in the latest run (1)' in html


def test_search_and_paging(owner, owner_client, monkeypatch):
    monkeypatch.setattr(set_views, "QUESTION_PAGE_SIZE", 2)
    texts = [
        "Renew a passport?",
        "Apply for a visa?",
        "Lost passport?",
        "Tax return?",
        "Passport fees?",
    ]
    question_set = make_set(owner, texts=texts)
    add_run(question_set, [P, F, P, F, P])
    url = reverse("evaluation:set", args=[question_set.pk])
    html = owner_client.get(url, {"q": "PASSPORT"}).content.decode()
    assert [int(n) for n in re.findall(r'<tr id="question-(\d+)">', html)] == [1, 3]
    assert "3 questions" in html and 'rel="next"' in html
    page2 = owner_client.get(url, {"q": "passport", "page": 2}).content.decode()
    assert [int(n) for n in re.findall(r'<tr id="question-(\d+)">', page2)] == [5]
    # The filter and the search combine.
    failing = owner_client.get(url, {"q": "passport", "filter": "always_failing"}).content.decode()
    assert re.findall(r'<tr id="question-(\d+)">', failing) == []


def test_runs_are_paged_newest_first(owner, owner_client, monkeypatch):
    monkeypatch.setattr(set_views, "RUN_PAGE_SIZE", 2)
    question_set = make_set(owner, 1)
    runs = [add_run(question_set, [P]) for _ in range(3)]
    url = reverse("evaluation:set", args=[question_set.pk])
    html = owner_client.get(url).content.decode()
    heads = re.findall(r'class="run-head" id="run-(\d+)"', html)
    assert heads == [str(runs[2].pk), str(runs[1].pk)]
    older = owner_client.get(url, {"runs": 2}).content.decode()
    assert re.findall(r'class="run-head" id="run-(\d+)"', older) == [str(runs[0].pk)]
    assert "Newer runs" in older


def test_trend_chart_is_inline_svg_with_each_rate(owner, owner_client):
    question_set = make_set(owner, 2)
    add_run(question_set, [P, F], citation=True, outcome=True)
    add_run(question_set, [P, P], citation=False)
    html = owner_client.get(reverse("evaluation:set", args=[question_set.pk])).content.decode()
    chart = re.search(r'<figure class="trend-chart".*?</figure>', html, re.S).group(0)
    assert "<svg" in chart and "<script" not in chart
    assert chart.count('class="trend-line"') >= 3  # pass rate, citation, and the legend's keys
    assert re.search(
        r'<g class="trend-series trend-pass">\s*<polyline points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"',
        chart,
    )
    # Outcome accuracy exists only in the first run: one mark, no line.
    outcome = re.search(r'<g class="trend-series trend-outcome">(.*?)</g>', chart, re.S).group(1)
    assert "<polyline" in outcome and outcome.count("<rect") == 1
    assert "Run 1: 50 %" in chart and "Run 2: 100 %" in chart


def test_history_shows_every_run_with_verdicts_and_an_escaped_word_diff(owner, owner_client):
    question_set, (first, second, third) = three_runs(owner)
    url = reverse("evaluation:question_history", args=[question_set.pk, 2])
    response = owner_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    order = [int(n) for n in re.findall(r'id="history-run-(\d+)"', html)]
    assert order == [first.pk, second.pk, third.pk]
    assert "Expected 1" in html  # the question's expected answer
    # The third run's first answer against the second run's: words marked, text escaped.
    assert "<del>old</del>" in html and "<ins>new</ins>" in html
    assert "&lt;passports&gt;" in html and "<passports>" not in html
    assert "1 of 3 answers passed" in html
    assert (
        owner_client.get(
            reverse("evaluation:question_history", args=[question_set.pk, 9])
        ).status_code
        == 404
    )


def test_set_list_counts_runs_and_latest_pass_rate(owner, owner_client, other_user):
    question_set, _runs = three_runs(owner)
    make_set(other_user, 2, name="Not yours")
    html = owner_client.get(reverse("evaluation:set_list")).content.decode()
    row = re.search(rf'<tr id="set-{question_set.pk}">(.*?)</tr>', html, re.S).group(1)
    assert ">4<" in row and ">3<" in row and "44 %" in row
    assert "Not yours" not in html


def test_another_users_set_is_404_on_pages_and_api(owner, other_user, client):
    question_set, _runs = three_runs(owner)
    client.force_login(other_user)
    assert client.get(reverse("evaluation:set", args=[question_set.pk])).status_code == 404
    history = reverse("evaluation:question_history", args=[question_set.pk, 1])
    assert client.get(history).status_code == 404
    for path in ("", "/grid", "/grid?format=csv", "/grid?format=xlsx"):
        response = client.get(f"/api/sets/{question_set.pk}{path}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get("/api/sets").json()["sets"] == []


def test_pages_need_login_and_get(owner, owner_client):
    question_set, _runs = three_runs(owner)
    url = reverse("evaluation:set", args=[question_set.pk])
    assert Client().get(url).status_code == 302
    assert owner_client.post(url).status_code == 405


def _grid_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_grid_and_history_queries_do_not_grow_with_questions_and_runs(owner, owner_client):
    small = make_set(owner, 2)
    add_run(small, [P, F])
    # q1 regressed and flaky: every filter below shows a row; a run with repeats in both
    # sets (their grade summaries read pass@k in one more query).
    add_run(small, [[F, P], [F, F]])
    big = make_set(owner, 12, name="Big")
    for n in range(5):
        add_run(big, [[P, F]] * 12 if n == 2 else [P, P] * 6 if n == 3 else [F, P] * 6)
    for name in ("", "regressed", "flaky"):
        small_url = reverse("evaluation:set", args=[small.pk]) + f"?filter={name}&q=Question"
        big_url = reverse("evaluation:set", args=[big.pk]) + f"?filter={name}&q=Question"
        count = _grid_queries(owner_client, small_url)
        assert count == _grid_queries(owner_client, big_url) <= 11
    small_history = reverse("evaluation:question_history", args=[small.pk, 1])
    big_history = reverse("evaluation:question_history", args=[big.pk, 1])
    assert _grid_queries(owner_client, small_history) == _grid_queries(owner_client, big_history)
    assert _grid_queries(owner_client, f"/api/sets/{small.pk}/grid") == _grid_queries(
        owner_client, f"/api/sets/{big.pk}/grid"
    )


def test_a_set_with_no_run_yet_shows_its_questions(owner, owner_client):
    question_set = make_set(owner, 2)
    html = owner_client.get(reverse("evaluation:set", args=[question_set.pk])).content.decode()
    assert re.findall(r'<tr id="question-(\d+)">', html) == ["1", "2"]
    assert 'id="trend-chart"' not in html
    history = owner_client.get(reverse("evaluation:question_history", args=[question_set.pk, 2]))
    assert "No run of this set yet." in history.content.decode()
