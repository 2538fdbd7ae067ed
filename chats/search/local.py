"""The `local` search provider: an SQLite FTS5 index over a folder of documents.

Enabled on a fresh checkout: when the index file is missing it is built on first use from
settings.LOCAL_SEARCH_DOCS (the shipped `sample/docs`). `manage.py index_documents DIR`
rebuilds it from any folder.

Language: results in the page language come first (ranked by bm25 among themselves),
then documents in other languages fill the remaining places. A French page thus cites
French documents whenever one matches, and still gets an answer when only an English
document covers the question.

Every call opens its own read-only connection: the batch engine searches from many
threads at once, an SQLite connection must not be shared between threads, and opening
one costs well under a millisecond.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from django.conf import settings

from chats.errors import ProviderError, ProviderNotConfigured
from chats.search.base import SearchProvider, SearchResult
from chats.search.indexer import IndexBuildError, ensure_index
from chats.search.text import content_words, words

MAX_QUERY_TERMS = 32
SNIPPET_TOKENS = 48  # FTS5 allows at most 64
NOT_CONFIGURED = "LOCAL_SEARCH_DOCS to a folder of documents, or run manage.py index_documents DIR"


def match_expression(query: str) -> str:
    """A MATCH expression that cannot break FTS5 syntax, whatever the user typed: every
    term is a quoted string (FTS5 operators, `*`, `-`, `NEAR`, parentheses and quotes lose
    their meaning inside one), terms are OR-ed, stop words dropped. Empty when the query
    has no word at all."""
    terms = content_words(query) or words(query)
    unique = list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in unique)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)


def _index_path() -> Path:
    return Path(settings.LOCAL_SEARCH_INDEX)


def _ready_index() -> Path:
    """The index file, built from LOCAL_SEARCH_DOCS first when it is missing."""
    path = _index_path()
    try:
        ready = ensure_index(index_path=path, docs_dir=settings.LOCAL_SEARCH_DOCS)
    except IndexBuildError as exc:
        raise ProviderNotConfigured(
            f"The local search index could not be built: {exc} "
            "Run manage.py index_documents DIR with a folder of documents.",
            field="search_provider",
        ) from exc
    if not ready:
        raise ProviderNotConfigured(
            f"The local search index {path} does not exist and LOCAL_SEARCH_DOCS is not a "
            "folder: run manage.py index_documents DIR.",
            field="search_provider",
        )
    return path


def _unreadable(path: Path, exc: sqlite3.Error) -> ProviderNotConfigured:
    return ProviderNotConfigured(
        f"The local search index {path} cannot be read ({exc}): rebuild it with "
        "manage.py index_documents DIR.",
        field="search_provider",
    )


class LocalSearch(SearchProvider):
    key = "local"
    label = "Local documents (offline)"

    def missing_setting(self) -> str | None:
        if _index_path().exists() or Path(settings.LOCAL_SEARCH_DOCS).is_dir():
            return None
        return NOT_CONFIGURED

    def search(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        expression = match_expression(query)
        if not expression or limit <= 0:
            return []
        path = _ready_index()
        sql = f"""
            SELECT d.title, d.url,
                   snippet(documents_fts, 1, '', '', '…', {SNIPPET_TOKENS})
            FROM documents_fts JOIN documents AS d ON d.id = documents_fts.rowid
            WHERE documents_fts MATCH ?
            ORDER BY (d.lang = ?) DESC, bm25(documents_fts, 5.0, 1.0), d.id
            LIMIT ?
        """
        try:
            conn = _connect_read_only(path)
            try:
                rows = conn.execute(sql, (expression, language, limit)).fetchall()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "fts5: syntax error" in str(exc):  # match_expression should make this impossible
                raise ProviderError(f"The local search could not read this query: {exc}") from exc
            raise _unreadable(path, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise _unreadable(path, exc) from exc
        return [
            SearchResult(title=title, url=url, snippet=" ".join(snippet.split()))
            for title, url, snippet in rows
        ]


def document_text(url: str) -> str | None:
    """The full text of the indexed document at `url`, or None (no index, not indexed).
    The extractive answerer reads whole documents rather than 48-token snippets."""
    path = _index_path()
    if not url or not path.exists():
        return None
    try:
        conn = _connect_read_only(path)
        try:
            row = conn.execute("SELECT body FROM documents WHERE url = ?", (url,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None
