from __future__ import annotations

import sqlite3
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chats.management.commands.index_documents import Command
from chats.search.local import LocalSearch


def run(*args: str) -> str:
    out = StringIO()
    call_command("index_documents", *args, stdout=out)
    return out.getvalue()


def count(index: Path) -> int:
    with sqlite3.connect(index) as conn:
        return conn.execute("SELECT count(*) FROM documents").fetchone()[0]


@pytest.fixture
def docs(tmp_path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    for n in range(5):
        (root / "sub" / f"page-{n}.md").write_text(f"# Page {n}\n\nText about topic{n}.\n")
    (root / "empty.md").write_text("---\ntitle: Empty\n---\n")
    (root / "binary.txt").write_bytes(b"\x81\x8d\x8f\x90\x9d")  # undefined in cp1252 too
    (root / "picture.png").write_bytes(b"\x89PNG")
    (root / ".hidden.md").write_text("# Hidden\n\nNot indexed.\n")
    return root


def test_indexes_a_folder_with_progress_and_summary(docs, tmp_path, settings):
    index = tmp_path / "out" / "index.sqlite3"

    output = run(str(docs), "--index", str(index), "--progress-every", "2")

    assert "2/7 files read" in output and "6/7 files read" in output
    assert "skipped binary.txt: not UTF-8 or Windows-1252 text" in output
    assert "skipped empty.md: no text" in output
    assert f"Indexed 5 documents (2 skipped, 1 other files ignored) into {index}" in output
    assert count(index) == 5


def test_base_url_sets_the_cited_address(docs, tmp_path, settings):
    index = tmp_path / "index.sqlite3"
    settings.LOCAL_SEARCH_INDEX = str(index)

    run(str(docs), "--base-url", "https://help.example.org/guide")

    (result,) = LocalSearch().search("topic3", language="en", limit=1)
    assert result.url == "https://help.example.org/guide/sub/page-3"
    assert result.title == "Page 3"


def test_default_index_is_the_setting(docs, tmp_path, settings):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "default.sqlite3")

    run(str(docs))

    assert count(tmp_path / "default.sqlite3") == 5


def test_without_dir_indexes_the_local_search_docs_setting(docs, tmp_path, settings):
    settings.LOCAL_SEARCH_DOCS = str(docs)
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "default.sqlite3")

    output = run()

    assert f"Indexing {docs} (LOCAL_SEARCH_DOCS)." in output
    assert f"Indexed 5 documents (2 skipped, 1 other files ignored) into {tmp_path}" in output
    assert count(tmp_path / "default.sqlite3") == 5


def test_without_dir_and_without_the_setting_fails(tmp_path, settings):
    settings.LOCAL_SEARCH_DOCS = ""
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "default.sqlite3")

    with pytest.raises(CommandError, match="Give DIR: no folder is set in LOCAL_SEARCH_DOCS"):
        run()

    assert not (tmp_path / "default.sqlite3").exists()


def test_help_says_dir_defaults_to_the_setting():
    parser = Command().create_parser("manage.py", "index_documents")

    assert "LOCAL_SEARCH_DOCS" in " ".join(parser.format_help().split())


def test_missing_folder_fails_and_keeps_the_old_index(docs, tmp_path):
    index = tmp_path / "index.sqlite3"
    run(str(docs), "--index", str(index))

    with pytest.raises(CommandError, match="does not exist. The index .* was not changed"):
        run(str(tmp_path / "nope"), "--index", str(index))

    assert count(index) == 5


def test_folder_without_documents_fails_and_keeps_the_old_index(docs, tmp_path):
    index = tmp_path / "index.sqlite3"
    run(str(docs), "--index", str(index))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.pdf").write_bytes(b"%PDF")

    with pytest.raises(CommandError, match="No .md, .html or .txt document could be indexed"):
        run(str(empty), "--index", str(index))

    assert count(index) == 5
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".search-index")) == []


def test_bad_base_url_is_refused(docs, tmp_path):
    with pytest.raises(CommandError, match="--base-url must be an http"):
        run(str(docs), "--index", str(tmp_path / "i.sqlite3"), "--base-url", "docs.example")


def test_rebuild_replaces_the_index_atomically_under_an_open_reader(docs, tmp_path):
    index = tmp_path / "index.sqlite3"
    run(str(docs), "--index", str(index))
    reader = sqlite3.connect(index)
    (docs / "sub" / "page-9.md").write_text("# Page 9\n\nBrand new text.\n")

    run(str(docs), "--index", str(index))

    # The open reader still sees the file it opened; new connections see the new one.
    assert reader.execute("SELECT count(*) FROM documents").fetchone()[0] == 5
    reader.close()
    assert count(index) == 6


@pytest.mark.django_db
def test_bootstrap_builds_the_missing_index_once(docs, tmp_path, settings):
    index = tmp_path / "var" / "search-index.sqlite3"
    settings.LOCAL_SEARCH_INDEX = str(index)
    settings.LOCAL_SEARCH_DOCS = str(docs)
    settings.BASE_DIR = tmp_path  # the login file goes to tmp_path/var

    out = StringIO()
    call_command("bootstrap", stdout=out)
    again = StringIO()
    call_command("bootstrap", stdout=again)

    assert f"Built the local search index: 5 documents from {docs}." in out.getvalue()
    assert "Built the local search index" not in again.getvalue()
    assert count(index) == 5


def test_second_document_with_the_same_url_is_skipped(tmp_path):
    docs = tmp_path / "dup"
    docs.mkdir()
    for name in ("a.md", "b.md"):
        (docs / name).write_text(f"---\nurl: https://x.example/same\n---\n# {name}\n\nText.\n")

    output = run(str(docs), "--index", str(tmp_path / "i.sqlite3"))

    assert "skipped b.md: same URL as a.md" in output
    assert "Indexed 1 documents (1 skipped)" in output
