"""Reading the old application's `mongoexport` files: JSON Lines one line at a time, or a
--jsonArray file whole, each bad document reported with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from batches.legacy.values import plain_json, text

# MongoDB stores no document over 16 MB (its BSON limit), so a longer line of an export is
# not a document of the old application: it is reported and skipped, unread.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


# A --jsonArray export is one JSON value, read whole; past this, export JSON Lines.
MAX_ARRAY_FILE_BYTES = 256 * 1024 * 1024


ERA2_FILES = ("interactions", "chats", "questions", "answers", "citations", "contexts")


def read_export(path: Path) -> tuple[list[dict], list[str]]:
    """Documents of a mongoexport file (JSON Lines or one JSON array) and read errors.

    JSON Lines are read line by line: a line over MAX_DOCUMENT_BYTES is skipped without
    being held in memory, and a line that is not valid (Extended) JSON is reported with
    its number and reason (a bad `$oid`, `$numberDecimal` or `$date`, nesting deeper
    than Python parses, ...) while the others still load. A JSON array is one value: it
    is read whole, up to MAX_ARRAY_FILE_BYTES.
    """
    name = f"{path.parent.name}/{path.name}"
    with path.open("rb") as handle:
        start = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        handle.seek(0)
        if start.startswith(b"["):
            return _read_array(path, name, handle)
        return _read_lines(name, handle)


def _json_options():
    from bson.json_util import JSONOptions

    return JSONOptions(tz_aware=True, tzinfo=UTC)


def _loads(raw: str) -> Any:
    from bson import json_util

    return json_util.loads(raw, json_options=_json_options())


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _read_lines(name: str, handle) -> tuple[list[dict], list[str]]:
    documents: list[dict] = []
    errors: list[str] = []
    limit = MAX_DOCUMENT_BYTES
    for number, line in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := handle.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass  # the rest of an over-long line, read and dropped piece by piece
            errors.append(
                f"{name} line {number}: a document of more than {limit // (1024 * 1024)} MB, "
                "larger than MongoDB stores; skipped"
            )
            continue
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            document = _loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            errors.append(f"{name} line {number}: not UTF-8 text ({exc.reason}); skipped")
            continue
        except Exception as exc:  # bson raises its own types, RecursionError, ArithmeticError
            errors.append(f"{name} line {number}: not valid JSON ({_why(exc)}); skipped")
            continue
        if not isinstance(document, dict):
            errors.append(f"{name} line {number}: not a JSON object; skipped")
            continue
        documents.append(document)
    return documents, errors


def _read_array(path: Path, name: str, handle) -> tuple[list[dict], list[str]]:
    size = path.stat().st_size
    if size > MAX_ARRAY_FILE_BYTES:
        return [], [
            f"{path}: a JSON array of {size // (1024 * 1024)} MB; arrays are read whole, up to "
            f"{MAX_ARRAY_FILE_BYTES // (1024 * 1024)} MB. Export it as JSON Lines "
            "(mongoexport without --jsonArray); nothing read from this file"
        ]
    try:
        content = handle.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"{path}: not UTF-8 text ({exc.reason}); export it again with mongoexport"]
    try:
        loaded = _loads(content)
    except Exception as exc:  # as in _read_lines
        return [], [f"{path}: not valid JSON ({_why(exc)}); nothing read from this file"]
    documents: list[dict] = []
    errors: list[str] = []
    for number, document in enumerate(loaded if isinstance(loaded, list) else [loaded], 1):
        if not isinstance(document, dict):
            errors.append(f"{name} item {number}: not a JSON object; skipped")
            continue
        documents.append(document)
    return documents, errors


def document_id(document: dict) -> str:
    return text(plain_json(document.get("_id"))).strip()


def ref_id(value: Any) -> str:
    """A reference as the old app stored it: {"$oid"}, an ObjectId, a string or a doc."""
    if isinstance(value, dict) and "_id" in value:
        value = value["_id"]
    return text(plain_json(value)).strip()


@dataclass
class ExportFolder:
    """One folder of mongoexport files: its batches and, for era 2, the other collections."""

    path: Path
    batches: list[dict]
    collections: dict[str, dict[str, dict]]
    missing: list[str]
    errors: list[str]
    notes: list[str]


def load_folder(path: Path) -> ExportFolder:
    """batches.json and, when present, the era-2 collections of one folder, by `_id`."""
    batches, errors = read_export(path / "batches.json")
    collections: dict[str, dict[str, dict]] = {}
    missing: list[str] = []
    notes: list[str] = []
    for name in ERA2_FILES:
        file = path / f"{name}.json"
        if not file.exists():
            missing.append(file.name)
            continue
        documents, file_errors = read_export(file)
        errors.extend(file_errors)
        by_id: dict[str, dict] = {}
        duplicates = 0
        for document in documents:
            try:
                key = document_id(document)
            except Exception as exc:  # an _id shaped like nothing the old app wrote
                errors.append(f"{path.name}/{file.name}: a document's _id: {_why(exc)}; skipped")
                continue
            if not key:
                errors.append(f"{path.name}/{file.name}: a document without _id; skipped")
            elif key in by_id:
                duplicates += 1
            else:
                by_id[key] = document
        if duplicates:
            notes.append(
                f"{path.name}/{file.name}: {duplicates} repeated documents ignored (same _id)"
            )
        collections[name] = by_id
    return ExportFolder(path, batches, collections, missing, errors, notes)


def find_export_folders(source: Path) -> list[Path]:
    """`source` and its direct subfolders that hold a batches.json, in name order."""
    folders = [source] if (source / "batches.json").is_file() else []
    folders += sorted(p for p in source.iterdir() if p.is_dir() and (p / "batches.json").is_file())
    return folders
