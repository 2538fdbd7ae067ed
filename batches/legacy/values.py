"""Values of the old application's documents, made plain: numbers, dates, text, ids,
Extended JSON ($oid, $date, $numberLong), answers and search results."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from typing import Any

MAX_COUNT = 2_147_483_647  # PositiveIntegerField


class LegacyDocumentError(Exception):
    """A legacy document that cannot be converted; the message says why."""


def to_int(value: Any, *, maximum: int | None = MAX_COUNT) -> int | None:
    """A non-negative int from a number, a numeric string or {"$numberLong": ...}."""
    if isinstance(value, dict):
        value = value.get("$numberLong", value.get("$numberInt", value.get("$numberDouble")))
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    # Counters are 32-bit integer columns: 1e300 tokens is a corrupt value, not a count.
    return number if number >= 0 and (maximum is None or number <= maximum) else None


def to_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime, ISO text, epoch ms or {"$date": ...}."""
    if isinstance(value, dict) and "$date" in value:
        value = value["$date"]
        if isinstance(value, dict):
            value = to_int(value, maximum=None)  # epoch milliseconds
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def text(value: Any) -> str:
    if value is None:
        return ""
    return storable(value if isinstance(value, str) else str(value))


# NUL and unpaired surrogates: no database stores them (uploads refuse them; an import
# drops NUL and shows a surrogate as U+FFFD, since the export cannot be fixed at the source).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


ID_CHARS = 64  # Batch.legacy_id and Chat.chat_id


def fit_id(value: str) -> str:
    """An id that fits in ID_CHARS: as it is when it does, else its start and a hash of
    the whole, so two long ids that share their first 64 characters stay two ids (and the
    same id gives the same result on every run)."""
    if len(value) <= ID_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
    return f"{value[: ID_CHARS - 17]}~{digest}"


def first(mapping: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return text(value).strip()
    return ""


_SENTENCE_TAG = re.compile(r"</?s-\d+>")


def answer_text(value: Any) -> str:
    """The old app wrapped answer sentences in <s-1>...</s-1>; keep the sentences only."""
    return re.sub(r"\s{2,}", " ", _SENTENCE_TAG.sub(" ", text(value))).strip()


def language(value: Any) -> str:
    """`en` / `fr` from the old app's `en`, `fr`, `eng`, `fra`, `fre`, `English`..."""
    return "fr" if text(value).strip().lower()[:2] == "fr" else "en"


def plain_json(value: Any) -> Any:
    """Extended JSON ($oid, $date, $numberLong) and BSON types as plain JSON values."""
    if isinstance(value, dict):
        if len(value) == 1:
            key, inner = next(iter(value.items()))
            if key == "$oid":
                return str(inner)
            if key == "$date":
                parsed = to_datetime(value)
                return parsed.isoformat() if parsed else plain_json(inner)
            if key in ("$numberLong", "$numberInt", "$numberDouble"):
                return plain_json(inner)
        return {storable(str(k)): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, datetime):
        return to_datetime(value).isoformat()
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)  # bson Int64 -> int
    return storable(str(value))  # ObjectId, Decimal128, ...


def parse_search_results(value: Any) -> list[dict]:
    """The old app kept search results as "Title: ...\\nLink: ...\\nSummary: ..." text."""
    if isinstance(value, list):
        return [plain_json(r) for r in value if isinstance(r, dict)]
    if not isinstance(value, str) or not value.strip():
        return []
    results: list[dict] = []
    current: dict[str, str] | None = None
    for line in value.splitlines():
        label, _, rest = line.partition(":")
        label = label.strip().lower()
        if label == "title":
            if current:
                results.append(current)
            current = {"title": rest.strip(), "url": "", "snippet": ""}
        elif label in ("link", "url"):
            current = current or {"title": "", "url": "", "snippet": ""}
            current["url"] = rest.strip()
        elif label in ("summary", "snippet"):
            current = current or {"title": "", "url": "", "snippet": ""}
            current["snippet"] = rest.strip()
        elif current and line.strip():
            # A summary that runs over several lines.
            current["snippet"] = f"{current['snippet']} {line.strip()}".strip()
    if current:
        results.append(current)
    return results
