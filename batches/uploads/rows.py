"""Roles and rows: which column is the question, and a table's cells become ParsedRows.

Owns the column roles (question, referring URL, chat id, expected answer and citation),
their aliases and the user's explicit choice (`ColumnChoice`), the result types
(`ParsedRow`, `ParsedUpload`), and `build`: the rules every table follows whatever its
format (header, roles, blank rows, empty questions, the row limit, padding columns),
plus the column chooser's `preview`. The readers in `csv_files` and `xlsx` hand `build`
numbered rows of text; `json_body` makes a row of each JSON record with `make_row`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings
from django.utils.translation import gettext, ngettext

from batches.errors import UploadError
from batches.models import EXPECTED_OUTCOMES, NOT_BLOCKED
from batches.uploads.limits import (
    MAX_RECORDS,
    check_cells,
    check_characters,
    check_count,
    check_headers,
    check_url,
    check_width,
    file_label,
)
from chats.models import AnswerType

QUESTION_ALIASES = ("question", "redactedquestion", "problemdetails", "prompt")
URL_ALIASES = ("url", "referringurl")
CHAT_ALIASES = ("chatid",)
EXPECTED_ANSWER_ALIASES = ("expectedanswer", "goldenanswer", "englishanswer", "origanswer")
# `citationurl` comes after the explicit names: a results file uploaded again carries the
# earlier run's citation_url (what that run cited) and maybe an expected_citation_url.
EXPECTED_CITATION_ALIASES = (
    "expectedcitation",
    "expectedcitationurl",
    "citationurl",
    "origcitation",
)
EXPECTED_OUTCOME_ALIASES = ("expectedoutcome", "answertype")
EXPECTED_BLOCK_ALIASES = ("block", "expectedblock")
PREVIEW_ROWS = 5
ACCEPTED_QUESTION_HEADERS = "question, RedactedQuestion, Problem Details, prompt"


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One question row. `columns` holds every original column, by its header."""

    question: str
    referring_url: str = ""
    chat_key: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    expected_answer: str = ""
    expected_citation_url: str = ""
    expected_outcome: str = ""


ROLES = (
    "question",
    "url",
    "chat_id",
    "expected_answer",
    "expected_citation",
    "expected_outcome",
    "expected_block",
)
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "question": QUESTION_ALIASES,
    "url": URL_ALIASES,
    "chat_id": CHAT_ALIASES,
    "expected_answer": EXPECTED_ANSWER_ALIASES,
    "expected_citation": EXPECTED_CITATION_ALIASES,
    "expected_outcome": EXPECTED_OUTCOME_ALIASES,
    "expected_block": EXPECTED_BLOCK_ALIASES,
}

# Expected-outcome cells are read with case, spaces, `_`, `-` and apostrophes ignored
# (batches.models.EXPECTED_OUTCOMES); other values mean nothing is expected.
_IGNORED_IN_VALUES = re.compile(r"[\s_\-'’]+")


def _value_key(value: str) -> str:
    return _IGNORED_IN_VALUES.sub("", value).lower()


_OUTCOME_WORDS = {_value_key(code): code for code in EXPECTED_OUTCOMES}
# Codes the origin's files put in the expected citation column instead of a URL.
CITATION_CODES = (
    AnswerType.NOT_GC,
    AnswerType.PT_MUNI,
    AnswerType.NOT_FOUND,
    AnswerType.CLARIFYING,
)
_BLOCK_WORDS = {
    **dict.fromkeys(("block", "blocked", "yes", "y", "true", "1"), AnswerType.BLOCKED.value),
    **dict.fromkeys(
        ("dontblock", "donotblock", "notblocked", "no", "n", "false", "0"), NOT_BLOCKED
    ),
}


def read_outcome(value: str) -> str:
    """An expected-outcome cell as its code ("" when it names none)."""
    return _OUTCOME_WORDS.get(_value_key(value), "")


def read_block(value: str) -> str:
    """A blocking-column cell (`Block`, `Don't block`, yes/no) as blocked / not-blocked."""
    return _BLOCK_WORDS.get(_value_key(value), "")


@dataclass(frozen=True)
class ColumnChoice:
    """Which column plays which role, as the user picked it in the column chooser.

    A header name picks that column; "" means "no such column"; None means "find it by
    its aliases" (the default for every role)."""

    question: str | None = None
    url: str | None = None
    chat_id: str | None = None
    expected_answer: str | None = None
    expected_citation: str | None = None
    expected_outcome: str | None = None
    expected_block: str | None = None

    def resolve(self, headers: list[str]) -> dict[str, str | None]:
        """Role -> header (None when the role has no column). An explicit header that is
        not in the file is refused (UploadError naming it)."""
        found: dict[str, str | None] = {}
        for role in ROLES:
            chosen = getattr(self, role)
            if chosen is None:
                found[role] = find_alias(headers, ROLE_ALIASES[role])
            elif chosen == "":
                found[role] = None
            elif chosen in headers:
                found[role] = chosen
            else:
                shown = ", ".join(f'"{h}"' for h in headers) or "none"
                raise UploadError(
                    f'There is no column "{chosen}" to use as {ROLE_LABELS[role]}. '
                    f"Columns found: {shown}.",
                    code="unknown_column",
                    column=chosen,
                )
        return found


ROLE_LABELS = {
    "question": "the question",
    "url": "the referring URL",
    "chat_id": "the chat id",
    "expected_answer": "the expected answer",
    "expected_citation": "the expected citation",
    "expected_outcome": "the expected outcome",
    "expected_block": "the expected blocking",
}
AUTO = ColumnChoice()


@dataclass
class ParsedUpload:
    rows: list[ParsedRow]
    columns: list[str]  # headers in file order, made unique
    format: Literal["csv", "xlsx"]
    skipped_blank: int = 0  # blank rows after the header, skipped
    question_column: str = ""
    encoding: str = ""  # CSV only
    delimiter: str = ""  # CSV only
    sheet: str = ""  # XLSX only
    # Role -> header found (or chosen) for it, None when the file has none.
    roles: dict[str, str | None] = field(default_factory=dict)
    # Preview only (parse_upload(preview=N)): the first N non-blank rows' cells, padded
    # to the headers; `rows` is then empty and no question column is required.
    preview_rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """What the caller asked of a file: the column choice, or a preview of N rows."""

    columns: ColumnChoice = AUTO
    preview: int = 0


def build(
    records: Iterator[tuple[int, list[str]]],
    filename: str,
    *,
    fmt: Literal["csv", "xlsx"],
    options: Options = Options(),
) -> ParsedUpload:
    """1. header = first non-blank row; 2. find alias columns; 3. rows, checked and counted."""
    header_cells: list[str] | None = None
    for _number, cells in records:
        if any(cell.strip() for cell in cells):
            header_cells = cells
            break
    if header_cells is None:
        raise UploadError(f"{file_label(filename)} has no rows.", code="empty")
    while not header_cells[-1].strip():  # trailing empty cells: spreadsheet padding
        header_cells.pop()
    check_width(len(header_cells), row=1)
    check_characters(
        {f"column {i}": cell for i, cell in enumerate(header_cells, start=1)},
        row_label="Row 1 (the header)",
        row=1,
    )
    check_headers(header_cells)
    headers = _unique_headers(header_cells)
    taken = set(headers)
    named = {i for i, cell in enumerate(header_cells) if cell.strip()}
    if options.preview:
        return preview(records, headers, fmt=fmt, count=options.preview)
    roles = options.columns.resolve(headers)
    question_key = roles["question"]
    if question_key is None:
        found = ", ".join(f'"{h}"' for h in headers if h) or gettext("none")
        hint = ""
        if any(h.rstrip().endswith("?") for h in header_cells):
            hint = " " + gettext(
                "The first row is read as column names: add a header row above it."
            )
        raise UploadError(
            gettext(
                "No question column. The first row must name one of: "
                "%(names)s (case, spaces, _ and - do not matter). "
                "Columns found: %(found)s."
            )
            % {"names": ACCEPTED_QUESTION_HEADERS, "found": found}
            + hint,
            code="no_question_column",
            row=1,
        )
    question_index = headers.index(question_key)
    header_count = len(headers)
    all_named = len(named) == len(headers)
    limit = settings.MAX_BATCH_ITEMS
    rows: list[ParsedRow] = []
    used_unnamed: set[int] = set()
    empty_question_rows: list[int] = []
    skipped = count = 0
    for number, cells in records:
        if number > MAX_RECORDS:
            raise UploadError(
                f"{file_label(filename)} has more than {MAX_RECORDS:,} rows, blank ones "
                "included: more than a spreadsheet holds. Delete the empty rows at its end.",
                code="too_many_rows",
            )
        if not any(map(str.strip, cells)):
            skipped += 1
            continue
        while len(cells) > len(headers):  # CSV rows longer than the header
            if not cells[-1].strip():
                cells.pop()
                continue
            check_width(len(headers) + 1, row=number)
            headers.append(_fresh_name(f"column {len(headers) + 1}", taken))
            taken.add(headers[-1])
        if not all_named or len(cells) > header_count:
            for index, cell in enumerate(cells):
                if index not in named and cell.strip():
                    used_unnamed.add(index)
        columns = dict(zip(headers, cells, strict=False))
        check_cells(columns, row_label=f"Row {number}", row=number)
        question = cells[question_index].strip() if question_index < len(cells) else ""
        if not question:
            empty_question_rows.append(number)
            if count + len(empty_question_rows) > limit:
                break  # refused whatever follows: stop reading
            continue
        count += 1
        if count > limit:
            break  # refused whatever follows: stop reading (a 20 MB CSV is 10M rows)
        if not empty_question_rows:
            rows.append(
                make_row(question, columns, headers, roles, row_label=f"Row {number}", row=number)
            )
    if empty_question_rows:
        raise _empty_question(
            empty_question_rows, question_key, fmt, more=count + len(empty_question_rows) > limit
        )
    if not count:
        raise UploadError(
            gettext("%(file)s has a header row but no questions below it.")
            % {"file": file_label(filename)},
            code="header_only",
        )
    check_count(count, what=file_label(filename))
    if len(headers) > header_count:  # a later row grew the header: earlier rows catch up
        for row in rows:
            for header in headers[header_count:]:
                row.columns.setdefault(header, "")
    unused = [h for i, h in enumerate(headers) if i not in named and i not in used_unnamed]
    if unused:  # spreadsheet padding: unnamed and never filled
        for row in rows:
            for key in unused:
                row.columns.pop(key, None)
        headers = [h for h in headers if h not in unused]
    return ParsedUpload(
        rows=rows,
        columns=headers,
        format=fmt,
        skipped_blank=skipped,
        question_column=question_key,
        roles=roles,
    )


def preview(
    records: Iterator[tuple[int, list[str]]], headers: list[str], *, fmt: str, count: int
) -> ParsedUpload:
    """The header and the first `count` non-blank rows, with the roles guessed by alias."""
    sample: list[list[str]] = []
    for _number, cells in records:
        if len(sample) >= count:
            break
        if not any(map(str.strip, cells)):
            continue
        cells = cells[: len(headers)]
        sample.append(cells + [""] * (len(headers) - len(cells)))
    roles = {role: find_alias(headers, ROLE_ALIASES[role]) for role in ROLES}
    return ParsedUpload(
        rows=[],
        columns=headers,
        format=fmt,  # type: ignore[arg-type]
        question_column=roles["question"] or "",
        roles=roles,
        preview_rows=sample,
    )


def make_row(
    question: str,
    columns: dict[str, str],
    headers: list[str],
    roles: dict[str, str | None],
    *,
    row_label: str,
    row: int,
) -> ParsedRow:
    """One row's roles read from its cells (trimmed), URLs held to their column's length."""
    if len(columns) < len(headers):  # short rows lack trailing cells
        for header in headers:
            columns.setdefault(header, "")
    url_key, chat_key = roles.get("url"), roles.get("chat_id")
    url = columns[url_key].strip() if url_key else ""
    check_url(url, column=url_key, row_label=row_label, row=row)
    answer_key, citation_key = roles.get("expected_answer"), roles.get("expected_citation")
    citation = columns[citation_key].strip() if citation_key else ""
    check_url(citation, column=citation_key, row_label=row_label, row=row)
    outcome_key, block_key = roles.get("expected_outcome"), roles.get("expected_block")
    outcome = read_outcome(columns[outcome_key]) if outcome_key else ""
    if citation.lower() in CITATION_CODES:  # a code, not a URL: it says the outcome
        outcome, citation = outcome or citation.lower(), ""
    block = read_block(columns[block_key]) if block_key else ""
    if block == AnswerType.BLOCKED or (block and not outcome):
        outcome = block
    return ParsedRow(
        question=question,
        referring_url=url,
        chat_key=columns[chat_key].strip() if chat_key else "",
        columns=columns,
        expected_answer=columns[answer_key].strip() if answer_key else "",
        expected_citation_url=citation,
        expected_outcome=outcome,
    )


def alias_key(header: str) -> str:
    """A header as the aliases are written: case, whitespace, `_` and `-` dropped."""
    return _IGNORED_IN_HEADERS.sub("", header).lower()


_IGNORED_IN_HEADERS = re.compile(r"[\s_\-]+")


def find_alias(headers: list[str], aliases: tuple[str, ...]) -> str | None:
    """The first header matching the earliest alias, ignoring case, spaces, `_` and `-`."""
    keys = [alias_key(header) for header in headers]
    return next((headers[keys.index(a)] for a in aliases if a in keys), None)


def cell_text(value: object) -> str:
    """A cell's value as text, the way a spreadsheet shows it (3.0 -> "3", a date ->
    "2024-03-01", True -> "TRUE")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # as a spreadsheet shows it
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _unique_headers(cells: list[str]) -> list[str]:
    headers: list[str] = []
    taken: set[str] = set()
    for position, cell in enumerate(cells, start=1):
        name = _fresh_name(cell.strip() or f"column {position}", taken)
        headers.append(name)
        taken.add(name)
    return headers


def _fresh_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _empty_question(
    numbers: list[int], question_key: str, fmt: str, *, more: bool = False
) -> UploadError:
    shown = ", ".join(str(n) for n in numbers[:5])
    if more:  # reading stopped at the row limit
        shown += gettext(" and more")
    elif len(numbers) > 5:
        shown += gettext(" and %(count)s more") % {"count": f"{len(numbers) - 5:,}"}
    elif len(numbers) > 1:
        shown = ", ".join(str(n) for n in numbers[:-1]) + gettext(" and %(last)s") % {
            "last": numbers[-1]
        }
    message = ngettext(
        'Row %(rows)s: the "%(column)s" cell is empty but other cells are filled. '
        "Fill in the question or delete the row (the header is row 1).",
        'Rows %(rows)s: the "%(column)s" cell is empty but other cells are filled. '
        "Fill in the question or delete the row (the header is row 1).",
        len(numbers),
    ) % {"rows": shown, "column": question_key}
    if fmt == "xlsx":
        message += " " + gettext(
            "If the cell holds a formula, open the file in Excel and save it again so that "
            "the formula's value is stored in the file."
        )
    return UploadError(
        message,
        code="empty_question",
        row=numbers[0],
        column=question_key,
    )
