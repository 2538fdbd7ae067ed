from __future__ import annotations

import pytest

from chats.prompts import parse_answer
from chats.providers import get_provider
from chats.providers.base import GenerationRequest
from chats.providers.extractive import (
    BM25,
    NOT_FOUND,
    ExtractiveProvider,
    compose_answer,
    split_sentences,
)
from chats.search.base import SearchResult
from chats.search.indexer import build_index

PASSPORT = SearchResult(
    title="Passports & travel",
    url="https://example.org/passport?a=1&b=2",
    snippet=(
        "Apply for a passport online or by mail. A passport costs 120 dollars for adults. "
        "Children need their own passport. Processing takes 20 business days."
    ),
)
TAXES = SearchResult(
    title="Taxes",
    url="https://example.org/taxes",
    snippet="File your taxes before April 30. Late filing costs a penalty of 5 percent.",
)


@pytest.fixture(autouse=True)
def no_local_index(settings, tmp_path):
    # Unless a test builds one, results are not in any local index: snippets are used.
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "absent.sqlite3")


def generate(question: str, results, language: str = "en", on_token=None):
    request = GenerationRequest(
        system="", messages=[], question=question, search_results=list(results), language=language
    )
    return ExtractiveProvider().generate(request, on_token=on_token)


def test_answers_from_the_best_sentences_and_cites_their_result():
    answer = compose_answer(
        question="How much does a passport cost?", results=[TAXES, PASSPORT], language="en"
    )

    assert answer.result == PASSPORT  # not the first result: the one that answers
    assert "A passport costs 120 dollars for adults." in answer.text
    assert "taxes" not in answer.text.lower()


def test_sentences_keep_document_order_and_are_not_repeated():
    repeated = SearchResult(
        title="T",
        url="https://example.org/t",
        snippet=(
            "Batches can be cancelled from any tab. Cancelled batches can be resumed later. "
            "Batches can be cancelled from any tab. Nothing else matters here at all."
        ),
    )

    answer = compose_answer(question="cancelled batches", results=[repeated], language="en")

    assert answer.text == (
        "Batches can be cancelled from any tab. Cancelled batches can be resumed later."
    )


def test_nothing_found_is_said_plainly_in_the_page_language():
    assert compose_answer(question="passport", results=[], language="en").text == NOT_FOUND["en"]
    french = compose_answer(question="passeport", results=[], language="fr")
    assert french.text == "Je n'ai pas trouvé cette information dans les documents consultés."
    assert french.result is None


def test_results_that_do_not_cover_the_question_are_not_an_answer():
    # Only "penalty", one of the six terms of the question, is in the result.
    answer = compose_answer(
        question="What penalty applies to a lost passport abroad in winter?",
        results=[TAXES],
        language="en",
    )

    assert answer.text == NOT_FOUND["en"]


def test_reply_uses_the_tag_format_that_the_prompt_parser_reads():
    generation = generate("How much does a passport cost?", [TAXES, PASSPORT])

    parsed = parse_answer(generation.text, [TAXES, PASSPORT])

    assert generation.text.startswith("<answer>")
    assert parsed.citation_url == PASSPORT.url  # & in the URL survives the round trip
    assert parsed.citation_title == "Passports & travel"
    assert "120 dollars" in parsed.answer
    assert generation.model == "extractive"


def test_not_found_reply_has_no_citation():
    generation = generate("What about the weather?", [TAXES], language="fr")

    parsed = parse_answer(generation.text, [TAXES], language="fr")

    assert parsed.answer == NOT_FOUND["fr"]
    assert parsed.answer_type == "not-found"
    assert (parsed.citation_url, parsed.citation_title) == ("", "")


def test_streams_word_by_word_and_pieces_join_to_the_text():
    pieces: list[str] = []

    generation = generate("passport cost", [PASSPORT], on_token=pieces.append)

    assert len(pieces) > 5
    assert "".join(pieces) == generation.text


def test_token_counts_are_word_counts():
    generation = generate("passport cost for adults", [PASSPORT])
    answer = parse_answer(generation.text, [PASSPORT]).answer

    assert generation.output_tokens == len(answer.split())
    assert generation.input_tokens == 4 + len(PASSPORT.snippet.split())


def test_full_document_from_the_local_index_is_read_not_only_the_snippet(tmp_path, settings):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "passport.md").write_text(
        "---\ntitle: Passports\nurl: https://example.org/passport\n---\n"
        "Passports are issued by the passport office.\n\n"
        "The renewal fee for a passport is 95 dollars in every province.\n"
    )
    index = tmp_path / "index.sqlite3"
    build_index(docs_dir=docs, index_path=index)
    settings.LOCAL_SEARCH_INDEX = str(index)
    short = SearchResult(
        title="Passports", url="https://example.org/passport", snippet="Passports are issued…"
    )

    answer = compose_answer(question="passport renewal fee", results=[short], language="en")

    assert "The renewal fee for a passport is 95 dollars" in answer.text


def test_provider_is_always_enabled_with_one_model():
    provider = get_provider("extractive")

    assert isinstance(provider, ExtractiveProvider)
    assert provider.missing_setting() is None
    assert provider.models() == ["extractive"]
    assert provider.label == "Extractive (offline, no AI model)"


def test_bm25_prefers_rare_terms_and_short_sentences():
    corpus = [["batch", "cancel"], ["batch", "export"], ["batch", "cancel", "x", "y", "z", "w"]]
    bm25 = BM25(corpus)

    assert bm25.score(["cancel"], 0) > bm25.score(["cancel"], 2)  # same tf, shorter wins
    assert bm25.score(["export"], 1) > bm25.score(["batch"], 1)  # rarer term weighs more
    assert bm25.score(["missing"], 0) == 0


def test_split_sentences_keeps_file_names_and_splits_at_sentence_ends():
    text = "Run manage.py index_documents DIR. It prints a summary!\nNext line (here)."

    assert split_sentences(text) == [
        "Run manage.py index_documents DIR.",
        "It prints a summary!",
        "Next line (here).",
    ]
