"""The documents of the `local` search index, as pages of the app.

Decision (docs/design-decisions.md, "Pages"): the index gives a document without its own URL the address
`https://docs.batchchat.local/<path>` (chats.search.indexer.DEFAULT_BASE_URL). That
address stays the document's stable identity (in stored answers, exports, expected
citations of evaluation files), but nothing on the network serves it. So:

- the app serves every indexed document at `/docs/<path>` (login required, like every
  page), rendered from the text the index holds: the same text the answerer read;
- pages link citations and search results under that placeholder base to `/docs/<path>`
  (see `chats.templatetags.chat_links.external_link`); documents indexed with their own
  URL (front matter `url:`, a canonical link, `index_documents --base-url`) keep it.

The index is a separate SQLite file; reading it costs no Django database query.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from chats.search.indexer import DEFAULT_BASE_URL, IndexBuildError, ensure_index


@dataclass(frozen=True)
class IndexedDocument:
    url: str
    title: str
    lang: str
    path: str
    body: str


@dataclass(frozen=True)
class IndexInfo:
    """What the local index holds, for the upload form's explanation."""

    docs_dir: str
    documents: int | None  # None: not built yet (built on first use)
    built_at: str = ""


def local_path(url: str) -> str | None:
    """The document path of a placeholder address, or None for any other URL."""
    if isinstance(url, str) and url.startswith(DEFAULT_BASE_URL):
        return url[len(DEFAULT_BASE_URL) :]
    return None


def served_url(url: str) -> str:
    """Where a person can read `url`: the app's /docs/ page for placeholder addresses."""
    path = local_path(url)
    if path is None:
        return url
    return reverse("document", args=[path]) if path else reverse("document-index")


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)


def _index_path() -> Path:
    return Path(settings.LOCAL_SEARCH_INDEX)


def indexed_document(path: str) -> IndexedDocument | None:
    """The indexed document at placeholder address DEFAULT_BASE_URL + `path` (with or
    without a trailing slash), building the index from LOCAL_SEARCH_DOCS when missing."""
    index = _index_path()
    try:
        if not ensure_index(index_path=index, docs_dir=settings.LOCAL_SEARCH_DOCS):
            return None
    except IndexBuildError:
        return None
    clean = path.strip("/")
    candidates = [DEFAULT_BASE_URL + clean, DEFAULT_BASE_URL + clean + "/"]
    try:
        conn = _connect(index)
        try:
            row = conn.execute(
                "SELECT url, title, lang, path, body FROM documents WHERE url IN (?, ?)",
                candidates,
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return IndexedDocument(*row) if row else None


def index_info() -> IndexInfo:
    """The index's folder and document count when built; else the folder it will be
    built from on first use."""
    index = _index_path()
    if index.exists():
        try:
            conn = _connect(index)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            finally:
                conn.close()
            return IndexInfo(
                docs_dir=meta.get("docs_dir", ""),
                documents=int(meta.get("documents", "0")),
                built_at=meta.get("built_at", ""),
            )
        except (sqlite3.Error, ValueError):
            pass
    return IndexInfo(docs_dir=str(settings.LOCAL_SEARCH_DOCS), documents=None)


def shipped_sample(info: IndexInfo) -> bool:
    """Whether the index holds the sample guide shipped in the repository."""
    sample = (Path(settings.BASE_DIR) / "sample" / "docs").resolve()
    return bool(info.docs_dir) and Path(info.docs_dir).resolve() == sample
