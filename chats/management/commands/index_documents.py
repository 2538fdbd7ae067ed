"""`manage.py index_documents [DIR]`: (re)build the `local` search index from a folder.

    manage.py index_documents                  # the folder of settings.LOCAL_SEARCH_DOCS
    manage.py index_documents sample/docs
    manage.py index_documents /srv/help --base-url https://help.example.org/ --index var/help.sqlite3

The new index is written next to the old one and renamed over it in one step: searches
running meanwhile keep reading the old index. On failure the old index is left as it was.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chats.search.indexer import DEFAULT_BASE_URL, IndexBuildError, build_index


class Command(BaseCommand):
    help = (
        "Index the .md, .html and .txt documents under DIR (default: the folder of "
        "settings.LOCAL_SEARCH_DOCS) for the 'local' search provider (rebuilds the whole "
        "index atomically)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "dir",
            type=Path,
            nargs="?",
            default=None,
            help=(
                "Folder of documents, searched recursively (default: settings.LOCAL_SEARCH_DOCS)."
            ),
        )
        parser.add_argument(
            "--base-url",
            default=DEFAULT_BASE_URL,
            help=(
                "URL of DIR on the web; a document without `url:` front matter or a "
                f"canonical link is cited as this + its relative path (default {DEFAULT_BASE_URL})."
            ),
        )
        parser.add_argument(
            "--index",
            type=Path,
            default=None,
            help="Index file to write (default: settings.LOCAL_SEARCH_INDEX).",
        )
        parser.add_argument(
            "--progress-every",
            type=int,
            default=100,
            help="Print progress every N documents (default 100; 0 for none).",
        )

    def handle(self, *args, **options) -> None:
        index_path: Path = options["index"] or Path(settings.LOCAL_SEARCH_INDEX)
        base_url: str = options["base_url"]
        if not base_url.startswith(("http://", "https://")):
            raise CommandError(f"--base-url must be an http(s) URL, not {base_url!r}.")
        docs_dir: Path | None = options["dir"]
        if docs_dir is None:
            # An empty setting would be Path("") == the current directory: refuse it.
            if not settings.LOCAL_SEARCH_DOCS:
                raise CommandError("Give DIR: no folder is set in LOCAL_SEARCH_DOCS.")
            docs_dir = Path(settings.LOCAL_SEARCH_DOCS)
            self.stdout.write(f"Indexing {docs_dir} (LOCAL_SEARCH_DOCS).")

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  {done}/{total} files read")

        try:
            summary = build_index(
                docs_dir=docs_dir,
                index_path=index_path,
                base_url=base_url,
                progress_every=options["progress_every"],
                on_progress=progress,
            )
        except IndexBuildError as exc:
            raise CommandError(f"{exc} The index {index_path} was not changed.") from exc
        except OSError as exc:
            raise CommandError(f"Could not write the index {index_path}: {exc}") from exc

        for path, reason in summary.skipped:
            self.stdout.write(self.style.WARNING(f"  skipped {path}: {reason}"))
        ignored = f", {summary.ignored} other files ignored" if summary.ignored else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Indexed {summary.indexed} documents ({len(summary.skipped)} skipped{ignored}) "
                f"into {index_path} in {summary.seconds:.2f} s."
            )
        )
