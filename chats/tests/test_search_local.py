from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chats.errors import ProviderNotConfigured
from chats.search import get_search_provider
from chats.search.indexer import build_index, parse_document
from chats.search.local import LocalSearch, document_text, match_expression
from chats.search.none import NoSearch

BASE = "https://docs.example/"


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path) -> Path:
    root = tmp_path / "docs"
    write(
        root,
        "cancel.md",
        "---\ntitle: Cancelling a batch\n---\n# Ignored heading\n\n"
        "Press **Cancel** to stop a batch. Rows already running finish.\n",
    )
    write(
        root,
        "fr/annuler.md",
        "---\ntitle: Annuler un lot\nlang: fr\nurl: https://docs.example/fr/annuler-un-lot\n---\n"
        "Appuyez sur Annuler pour arrêter un lot (cancel).\n",
    )
    write(
        root,
        "guide/export.html",
        "<html lang='en'><head><title>Export columns</title>"
        "<link rel='canonical' href='https://docs.example/export'>"
        "<style>p {color: red}</style><script>var cancel = 1;</script></head>"
        "<body><nav>Menu</nav><h1>Exports</h1><p>The export has one row per question.</p>"
        "<p>Formulas are neutralised &amp; safe.</p></body></html>",
    )
    write(root, "limits.txt", "Upload limits\n\nA batch holds at most 10,000 rows.\n")
    write(root, "notes.pdf", "not indexed")
    return root


@pytest.fixture
def index(docs, tmp_path, settings) -> Path:
    path = tmp_path / "var" / "index.sqlite3"
    build_index(docs_dir=docs, index_path=path, base_url=BASE)
    settings.LOCAL_SEARCH_INDEX = str(path)
    settings.LOCAL_SEARCH_DOCS = str(tmp_path / "no-such-folder")
    return path


def test_markdown_title_url_and_language_come_from_front_matter(docs):
    doc = parse_document(docs / "fr/annuler.md", root=docs, base_url=BASE)

    assert (doc.title, doc.url, doc.lang) == (
        "Annuler un lot",
        "https://docs.example/fr/annuler-un-lot",
        "fr",
    )


def test_markdown_without_url_gets_base_url_plus_path_and_text_without_markup(docs):
    doc = parse_document(docs / "cancel.md", root=docs, base_url=BASE)

    assert doc.url == "https://docs.example/cancel"
    assert doc.lang == "en"
    assert "Press Cancel to stop a batch." in doc.body
    assert "**" not in doc.body


def test_markdown_title_falls_back_to_first_heading(tmp_path):
    path = write(tmp_path, "a/index.md", "Intro line\n\n# Real title\n\nSome text here.\n")

    doc = parse_document(path, root=tmp_path, base_url="https://h.example/docs")

    assert doc.title == "Real title"
    assert doc.url == "https://h.example/docs/a/"  # index.md is its folder's page


def test_html_title_canonical_and_text_without_scripts_styles_or_nav(docs):
    doc = parse_document(docs / "guide/export.html", root=docs, base_url=BASE)

    assert doc.title == "Export columns"
    assert doc.url == "https://docs.example/export"
    assert doc.body.splitlines() == [
        "Exports",
        "The export has one row per question.",
        "Formulas are neutralised & safe.",
    ]


def test_html_without_title_uses_h1_and_keeps_html_suffix_in_url(tmp_path):
    path = write(tmp_path, "page.html", "<h1>Only a heading</h1><p>Body text.</p>")

    doc = parse_document(path, root=tmp_path, base_url=BASE)

    assert (doc.title, doc.url) == ("Only a heading", "https://docs.example/page.html")


def test_txt_first_line_is_the_title(docs):
    doc = parse_document(docs / "limits.txt", root=docs, base_url=BASE)

    assert (doc.title, doc.body) == ("Upload limits", "A batch holds at most 10,000 rows.")


def test_windows_1252_file_is_read(tmp_path):
    path = tmp_path / "cp.txt"
    path.write_bytes("Café\n\nDonnées exportées.\n".encode("cp1252"))

    assert parse_document(path, root=tmp_path, base_url=BASE).title == "Café"


def test_search_ranks_and_snippets(index):
    results = LocalSearch().search("How do I cancel a batch?", language="en", limit=5)

    assert results[0].url == "https://docs.example/cancel"
    assert results[0].title == "Cancelling a batch"
    assert "Cancel to stop a batch" in results[0].snippet
    assert "var cancel" not in " ".join(r.snippet for r in results)  # scripts not indexed


def test_page_language_documents_come_first_then_others(index):
    french = LocalSearch().search("cancel", language="fr", limit=5)
    english = LocalSearch().search("cancel", language="en", limit=5)

    assert [r.url for r in french] == [
        "https://docs.example/fr/annuler-un-lot",
        "https://docs.example/cancel",
    ]
    assert [r.url for r in english] == [
        "https://docs.example/cancel",
        "https://docs.example/fr/annuler-un-lot",
    ]


def test_stemming_and_accents_match(index):
    assert LocalSearch().search("cancelling", language="en", limit=1)[0].url.endswith("/cancel")
    assert LocalSearch().search("arreter", language="fr", limit=1)[0].url.endswith("annuler-un-lot")


def test_limit_is_respected(index):
    assert len(LocalSearch().search("batch lot export rows", language="en", limit=2)) == 2


@pytest.mark.parametrize(
    "query",
    [
        'cancel "batch',
        "cancel) OR (",
        "cancel*",
        "NEAR(cancel batch, 2)",
        "-cancel -batch",
        "title:cancel",
        "cancel AND NOT batch",
        "^cancel + {batch}",
        "cancel'; DROP TABLE documents; --",
        "cancel \"\" '' \\ /",
    ],
)
def test_fts_syntax_in_questions_cannot_break_the_query(index, query):
    results = LocalSearch().search(query, language="en", limit=5)

    assert results  # every one of these mentions cancel
    assert all(r.url for r in results)


@pytest.mark.parametrize("query", ["", "   ", "?!", "the and of", "((()))", "***"])
def test_questions_without_words_find_nothing_or_only_stop_words(index, query):
    assert isinstance(LocalSearch().search(query, language="en", limit=5), list)


def test_match_expression_quotes_terms_and_drops_stop_words():
    assert match_expression('How do I "cancel" a batch -now*?') == '"cancel" OR "batch"'
    assert match_expression("Comment annuler le lot ?") == '"annuler" OR "lot"'
    assert match_expression("the") == '"the"'  # only stop words: keep them
    assert match_expression("?!") == ""


def test_document_text_returns_the_full_body(index):
    assert document_text("https://docs.example/cancel").startswith("Ignored heading\nPress")
    assert document_text("https://elsewhere.example/") is None


def test_missing_index_is_built_on_first_search(docs, tmp_path, settings):
    path = tmp_path / "built-on-demand.sqlite3"
    settings.LOCAL_SEARCH_INDEX = str(path)
    settings.LOCAL_SEARCH_DOCS = str(docs)
    assert LocalSearch().missing_setting() is None

    results = LocalSearch().search("cancel", language="en", limit=1)

    assert path.exists()
    assert results[0].url == "https://docs.batchchat.local/cancel"  # the default base URL


def test_concurrent_first_searches_build_one_valid_index(docs, tmp_path, settings):
    path = tmp_path / "concurrent.sqlite3"
    settings.LOCAL_SEARCH_INDEX = str(path)
    settings.LOCAL_SEARCH_DOCS = str(docs)
    outcomes: list[object] = []
    barrier = threading.Barrier(16)

    def search() -> None:
        barrier.wait()
        try:
            outcomes.append(LocalSearch().search("cancel batch", language="en", limit=3))
        except Exception as exc:  # collected and asserted below
            outcomes.append(exc)

    threads = [threading.Thread(target=search) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(o, list) and o for o in outcomes), outcomes
    assert list(tmp_path.glob(".search-index-*")) == []  # no temp file left behind


def test_no_index_and_no_docs_is_not_configured(tmp_path, settings):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "missing.sqlite3")
    settings.LOCAL_SEARCH_DOCS = str(tmp_path / "missing-docs")

    assert "index_documents" in LocalSearch().missing_setting()
    with pytest.raises(ProviderNotConfigured, match="run manage.py index_documents DIR"):
        get_search_provider("local")
    with pytest.raises(ProviderNotConfigured, match="run manage.py index_documents DIR"):
        LocalSearch().search("cancel", language="en", limit=5)


def test_corrupt_index_asks_for_a_rebuild(tmp_path, settings):
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    settings.LOCAL_SEARCH_INDEX = str(path)

    with pytest.raises(ProviderNotConfigured, match="rebuild it with manage.py index_documents"):
        LocalSearch().search("cancel", language="en", limit=5)


def test_search_opens_the_index_read_only(index):
    results = LocalSearch().search("cancel", language="en", limit=1)
    assert [result.url for result in results] == ["https://docs.example/cancel"]
    # The index is not locked or altered by a search: a writer can open it at once.
    conn = sqlite3.connect(index, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    conn.rollback()
    conn.close()


def test_none_returns_nothing_and_is_always_enabled():
    assert NoSearch().missing_setting() is None
    assert NoSearch().search("anything", language="en", limit=5) == []
