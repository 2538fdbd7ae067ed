"""Build the `local` search index: an SQLite FTS5 file over a folder of documents.

The index is its own SQLite file (settings.LOCAL_SEARCH_INDEX), not the Django database:
it is rebuilt wholesale from the documents, read by many threads at once, and must not
take part in the app's migrations or transactions.

Documents: `.md` / `.markdown` (front matter `title:`, `url:`, `lang:`; else the first
`# heading`), `.html` / `.htm` (`<title>` or `<h1>`, `<link rel="canonical">`,
`<html lang>`), `.txt` (first line is the title). A document without its own URL gets
the base URL + its path relative to the folder, without the `.md` / `.txt` extension
(`guide/upload.md` -> `https://docs.batchchat.local/guide/upload`; `index.md` -> the
folder's URL). Documents without `lang` are English.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

from chats.models import Language

DEFAULT_BASE_URL = "https://docs.batchchat.local/"
SUPPORTED_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt"}
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
LANGUAGES = frozenset(Language.values)

# Porter stems English words (upload/uploads/uploading); unicode61 with diacritics removed
# lets "donnees" find "données". The same tokenizer runs on documents and queries.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"

SCHEMA = f"""
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    lang TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE VIRTUAL TABLE documents_fts USING fts5(
    title, body, content='documents', content_rowid='id', tokenize='{FTS_TOKENIZE}'
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class IndexBuildError(Exception):
    """The index could not be built (folder missing, nothing to index)."""


@dataclass(frozen=True)
class Document:
    url: str
    title: str
    lang: str
    path: str
    body: str


@dataclass
class IndexSummary:
    index_path: Path
    indexed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: int = 0  # files of other types
    seconds: float = 0.0


# --- parsing ------------------------------------------------------------------------------

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def _normalise_lang(value: str) -> str:
    lang = value.strip().lower()[:2]
    return lang if lang in LANGUAGES else Language.EN.value


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Simple `key: value` front matter (no YAML dependency: nested values are not needed)."""
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[match.end() :]


def _markdown_to_text(markdown: str) -> tuple[str, str]:
    """(first # heading, plain text). Keeps one line per heading, paragraph or list item
    so that sentences stay apart for snippets and the extractive answerer."""
    first_heading = ""
    lines: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            lines.append(" ".join(paragraph))
            paragraph.clear()

    in_fence = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            if line.strip():
                lines.append(line.strip())
            continue
        heading = MD_HEADING.match(line)
        if heading:
            flush()
            text = _inline_markdown(heading.group(1))
            if not first_heading and raw.lstrip().startswith("# "):
                first_heading = text
            lines.append(text)
            continue
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        if re.match(r"^\|?\s*:?-{3,}", stripped):  # table separator row
            continue
        if stripped.startswith("|"):
            flush()
            cells = [_inline_markdown(c) for c in stripped.strip("|").split("|")]
            lines.append(": ".join(c for c in cells if c))
            continue
        item = re.match(r"^(?:[-*+]|\d+[.)])\s+(.*)$", stripped)
        if item:
            flush()
            paragraph.append(_inline_markdown(item.group(1)))
            continue
        paragraph.append(_inline_markdown(stripped.lstrip("> ")))
    flush()
    return first_heading, "\n".join(line for line in lines if line)


def _inline_markdown(text: str) -> str:
    text = MD_LINK.sub(r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<!\w)[*_](.+?)[*_](?!\w)", r"\1", text)
    return text.strip()


class _HTMLText(HTMLParser):
    BLOCK = {
        "p", "div", "section", "article", "li", "ul", "ol", "br", "tr", "td", "th", "table",
        "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "dd", "dt", "header",
        "footer", "main", "nav", "aside", "figcaption",
    }  # fmt: skip
    # Site navigation and footers repeat on every page: indexing them only adds noise.
    SKIP = {"script", "style", "noscript", "template", "svg", "head", "nav", "footer"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self.canonical = ""
        self.lang = ""
        self.parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html" and values.get("lang"):
            self.lang = values["lang"]
        elif tag == "link" and "canonical" in values.get("rel", "").lower().split():
            self.canonical = self.canonical or values.get("href", "").strip()
        elif tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self._skip_depth += 1
        if tag == "h1" and not self.h1:
            self._in_h1 = True
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP and self._skip_depth:
            self._skip_depth -= 1
        if tag == "h1":
            self._in_h1 = False
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip_depth:
            return
        if self._in_h1:
            self.h1 += data
        self.parts.append(data)

    def text(self) -> str:
        joined = "".join(self.parts)
        lines = (" ".join(line.split()) for line in joined.split("\n"))
        return "\n".join(line for line in lines if line)


def parse_document(path: Path, *, root: Path, base_url: str) -> Document:
    """Read one file; raise ValueError (reason for people) when it cannot be indexed."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise ValueError(f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 or Windows-1252 text") from None
    relative = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    url = lang = ""
    if suffix in {".md", ".markdown"}:
        meta, markdown = parse_front_matter(text)
        heading, body = _markdown_to_text(markdown)
        title = meta.get("title") or heading
        url, lang = meta.get("url", ""), meta.get("lang", "")
    elif suffix in {".html", ".htm"}:
        parser = _HTMLText()
        parser.feed(text)
        parser.close()
        body = parser.text()
        title = " ".join(parser.title.split()) or " ".join(parser.h1.split())
        url, lang = parser.canonical, parser.lang
    else:
        first, _, rest = text.strip().partition("\n")
        title, body = first.strip(), rest.strip()
    if not body.strip():
        raise ValueError("no text")
    if not url:
        url = default_url(relative, base_url=base_url)
    return Document(
        url=url,
        title=title.strip() or path.stem.replace("-", " ").replace("_", " ").capitalize(),
        lang=_normalise_lang(lang),
        path=relative,
        body=body,
    )


def default_url(relative: str, *, base_url: str) -> str:
    base = base_url if base_url.endswith("/") else base_url + "/"
    stem, dot, suffix = relative.rpartition(".")
    if dot and suffix.lower() in {"md", "markdown", "txt"}:
        relative = stem
        if relative == "index" or relative.endswith("/index"):
            relative = relative[: -len("index")]
    return urljoin(base, relative)


# --- building -----------------------------------------------------------------------------


def iter_files(root: Path) -> list[Path]:
    """Supported and unsupported files under root, sorted, hidden files and folders left
    out (editor backups, .git)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / name for name in sorted(filenames) if not name.startswith("."))
    return found


def build_index(
    *,
    docs_dir: Path | str,
    index_path: Path | str,
    base_url: str = DEFAULT_BASE_URL,
    progress_every: int = 100,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexSummary:
    """1. walk docs_dir 2. parse each supported file into a temp index next to the target
    3. atomically rename it over the old index (readers keep the old file until then).

    Raise IndexBuildError when the folder is missing or holds no indexable document; the old
    index is then left untouched."""
    started = time.monotonic()
    root = Path(docs_dir).resolve()
    target = Path(index_path)
    if not root.is_dir():
        raise IndexBuildError(f"The documents folder {root} does not exist.")
    files = iter_files(root)
    candidates = [p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES]
    summary = IndexSummary(index_path=target, ignored=len(files) - len(candidates))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".search-index-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(SCHEMA)
            seen: dict[str, str] = {}
            for number, path in enumerate(candidates, start=1):
                if (
                    on_progress
                    and progress_every
                    and number > 1
                    and (number - 1) % progress_every == 0
                ):
                    on_progress(number - 1, len(candidates))
                relative = path.relative_to(root).as_posix()
                try:
                    doc = parse_document(path, root=root, base_url=base_url)
                except (OSError, ValueError) as exc:
                    summary.skipped.append((relative, str(exc) or type(exc).__name__))
                    continue
                if doc.url in seen:
                    summary.skipped.append((relative, f"same URL as {seen[doc.url]}"))
                    continue
                seen[doc.url] = relative
                cursor = conn.execute(
                    "INSERT INTO documents (url, title, lang, path, body) VALUES (?, ?, ?, ?, ?)",
                    (doc.url, doc.title, doc.lang, doc.path, doc.body),
                )
                conn.execute(
                    "INSERT INTO documents_fts (rowid, title, body) VALUES (?, ?, ?)",
                    (cursor.lastrowid, doc.title, doc.body),
                )
                summary.indexed += 1
            if not summary.indexed:
                raise IndexBuildError(
                    f"No .md, .html or .txt document could be indexed in {root}"
                    + (f" ({len(summary.skipped)} skipped)." if summary.skipped else ".")
                )
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("docs_dir", str(root)),
                    ("base_url", base_url),
                    ("built_at", datetime.now(UTC).isoformat()),
                    ("documents", str(summary.indexed)),
                ],
            )
            conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('optimize')")
            conn.commit()
        finally:
            conn.close()
        tmp.chmod(0o644)
        os.replace(tmp, target)  # atomic on POSIX: readers see the old or the new file
    finally:
        tmp.unlink(missing_ok=True)
    summary.seconds = time.monotonic() - started
    return summary


_build_lock = threading.Lock()


def ensure_index(*, index_path: Path | str, docs_dir: Path | str | None) -> bool:
    """Build the index from docs_dir when the file is missing. True when an index exists
    afterwards. Threads of one process build once (lock + re-check); two processes may
    both build, each into its own temp file, and the last rename wins: both are valid."""
    target = Path(index_path)
    if target.exists():
        return True
    if not docs_dir or not Path(docs_dir).is_dir():
        return False
    with _build_lock:
        if not target.exists():
            build_index(docs_dir=docs_dir, index_path=target)
    return True
