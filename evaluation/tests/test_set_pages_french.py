"""The set pages in French: every new word translated (no English left) and French
number and colon typography."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from evaluation.tests.grid_helpers import add_run, make_set

pytestmark = pytest.mark.django_db

ENGLISH = [
    "Run ",
    "Runs",
    "Question sets",
    "Flaky",
    "Regressed",
    "Always failing",
    "Search",
    "pass rate",
    "Trend",
    "History",
    "Figures",
    "Expected answer",
    "Expected citation",
    "Previous",
    "Next",
    "answers per",
]


def visible(html: str) -> str:
    html = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_grid_history_and_list_have_no_english_left_in_french(owner, owner_client):
    question_set = make_set(owner, 2)
    add_run(question_set, ["pass", "fail"])
    add_run(question_set, [["pass", "fail", "pass"], ["fail", "fail", "ungraded"]])
    batch = add_run(question_set, ["fail", "pass"])
    pages = [
        reverse("evaluation:set_list"),
        reverse("evaluation:set", args=[question_set.pk]),
        reverse("evaluation:question_history", args=[question_set.pk, 1]),
        reverse("batches:list"),
        batch.get_absolute_url(),
    ]
    for url in pages:
        text = visible(owner_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode())
        left = [word for word in ENGLISH if word in text]
        assert left == [], (url, left)
        assert not re.findall(r"\w{2,}[ ]?:(?!//|\d)", text), url
