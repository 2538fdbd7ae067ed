"""The guard against the origin's own policy (issue 26): files shaped like the origin's
test file (a question and whether it must be blocked), names of private persons with and
without an introduction, what the policy says to leave alone, sites and handles, labels,
and the names data loaded once, lazily."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from chats.guard import BLOCKED, PASSED, REDACTED, names, screen, screen_url
from chats.guard import words as lists

DATA = Path(__file__).resolve().parent / "data"


def _rows(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", ["guard_origin_shape.csv", "guard_origin_shape_fr.csv"])
def test_files_shaped_like_the_origins_test_file(name):
    rows = _rows(name)
    to_block = [row for row in rows if row["should_block"] == "yes"]
    to_pass = [row for row in rows if row["should_block"] == "no"]
    assert to_block and to_pass
    missed = [row["question"] for row in to_block if screen(row["question"]).status != BLOCKED]
    stopped = [row["question"] for row in to_pass if screen(row["question"]).status != PASSED]
    assert len(missed) <= 0.03 * len(to_block), missed
    assert stopped == []


@pytest.mark.parametrize(
    ("question", "redacted"),
    [
        ("Can Gurpreet Sandhu get EI?", "Can [NAME] get EI?"),
        ("Le dossier de Wei Zhang est-il complet?", "Le dossier de [NAME] est-il complet?"),
        ("This is Tran Minh Quan, any news?", "This is [NAME], any news?"),
        ("Mme Tremblay attend son chèque", "Mme [NAME] attend son chèque"),
        ("ma fille Chloé a besoin d'un passeport", "ma fille [NAME] a besoin d'un passeport"),
        ("Is my file complete? - Daniel Kowalski", "Is my file complete? - [NAME]"),
        ("Je me présente : Lucas Moreau, de Laval", "Je me présente : [NAME], de Laval"),
        ("my first name is Ravinder, ok?", "my first name is [NAME], ok?"),
        ("Why did Kenji Watanabe's claim fail?", "Why did [NAME]'s claim fail?"),
    ],
)
def test_names_of_private_persons_are_redacted_whole(settings, question, redacted):
    settings.GUARD_PII_ACTION = "redact"
    result = screen(question)
    assert result.status == REDACTED and result.reasons == ("name",)
    assert result.text == redacted


@pytest.mark.parametrize(
    "question",
    [
        "Who is Justin Trudeau?",
        "When was Lester B. Pearson prime minister?",
        "Why did Julie Payette resign?",
        "What did Tommy Douglas do for medicare?",
        "Is the Terry Fox Run tax deductible?",
        "Where is the Harry Hays Building?",
        "L'édifice Jean-Talon est-il ouvert?",
        "Does the Cree Nation of Mistissini have a band office?",
        "Where are the 1921 census records for Johann Schmidt of Winnipeg?",
        "I'm Canadian but live in France",
        "Is Service Canada open on Boxing Day?",
        "Can I use My Service Canada Account?",
        "Où est mon chèque? Merci beaucoup",  # a sign-off is no signature without a name
        "Which plan is best overall",
        "Is it ready? Thanks Service Canada",
    ],
)
def test_what_the_policy_leaves_alone_passes(question):
    assert screen(question).status == PASSED


def test_the_do_not_lists_are_data_files_with_a_source():
    for name in ("public_figures", "not_a_person_words", "archival_words", "first_names"):
        text = (lists.DATA / f"{name}.txt").read_text(encoding="utf-8")
        header = [line for line in text.splitlines() if line.startswith("#")]
        assert any("Source" in line for line in header), name
        assert any("2026" in line for line in header), name  # dated
    assert {"justin trudeau", "mary simon", "kim campbell"} <= {
        line.lower() for line in lists.word_list("public_figures")
    }


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("follow me on Twitter @jsmith_88", ("url",)),
        ("suivez-moi sur Instagram @chloe_gagnon", ("url",)),
        ("my instagram @tomas.rivera.ca", ("url",)),  # a handle, not an e-mail
        ("See my website johnsmithphotography.ca", ("url",)),
        ("mon site www.lucbergeron.ca", ("url",)),
        ("Email me at jo@example.ca", ("email",)),
        ("My phone number is 555-555-5555", ("phone",)),  # ten digits in phone format
        ("Numéro de dossier : 7733 2190 11", ("id_number",)),
    ],
)
def test_sites_handles_and_labels(question, kinds):
    assert screen(question).reasons == kinds


@pytest.mark.parametrize(
    "question",
    [
        "Is www.cra-arc.gc.ca the real CRA site?",
        "Is https://www.youtube.com/watch?v=dQw4w9WgXcQ the official video?",
        "my site is canada.ca, right?",
        "Does the CRA have an Instagram account?",
    ],
)
def test_government_and_well_known_sites_pass(question):
    assert screen(question).status == PASSED


def test_a_value_under_a_personal_query_key_is_redacted_even_when_nothing_is_found(settings):
    settings.GUARD_PII_ACTION = "redact"
    result = screen_url("https://x.example/f?name=jo&user=jsmith88&lang=en&id=12")
    assert result.text == "https://x.example/f?name=[NAME]&user=[URL]&lang=en&id=12"
    assert result.reasons == ("name", "url")
    assert screen_url(result.text).status == PASSED


def test_the_names_data_is_read_once_and_only_when_needed(monkeypatch):
    reads: list[str] = []
    read_text = Path.read_text

    def spy(path, *args, **kwargs):
        reads.append(path.stem)
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", spy)
    lists.word_list.cache_clear()
    lists.word_set.cache_clear()
    try:
        screen("How do I apply for EI?")
        assert "first_names" not in reads  # no capitalised pair: the list is not needed
        screen("Can Gurpreet Sandhu get EI?")
        screen("Can Ahmed Ali get EI?")
        assert reads.count("first_names") == 1
    finally:
        lists.word_list.cache_clear()
        lists.word_set.cache_clear()


def test_the_guard_module_imports_without_reading_the_names(tmp_path):
    code = (
        "import os, pathlib, django\n"
        "reads, read_text = [], pathlib.Path.read_text\n"
        "def spy(path, *a, **k):\n"
        "    reads.append(path.stem)\n"
        "    return read_text(path, *a, **k)\n"
        "pathlib.Path.read_text = spy\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'batchchat.settings')\n"
        "django.setup()\n"
        "import chats.guard\n"
        "print(sorted(set(reads) & {'first_names', 'public_figures', 'east_asian_surnames'}))\n"
    )
    root = Path(__file__).resolve().parent.parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert names.find_names  # the module is there, its data is not read yet


def test_the_ai_check_instructions_are_the_policy_file():
    from chats.guard import AI_CHECK_SYSTEM

    policy = [line for line in lists.word_list("policy")]
    assert len(policy) > 10
    for line in policy:
        assert line in AI_CHECK_SYSTEM
    assert "First Nation and Indigenous nation names" in AI_CHECK_SYSTEM
