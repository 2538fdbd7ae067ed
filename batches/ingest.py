"""Upload parsing: a CSV or XLSX file becomes validated rows (see DESIGN "Upload rules")."""

from __future__ import annotations

from dataclasses import dataclass, field


class UploadError(ValueError):
    """A file that cannot become a batch. The message names the problem for a person."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.row = row
        self.column = column


@dataclass(frozen=True)
class ParsedRow:
    """One question row. `columns` holds every original column, by its header."""

    question: str
    referring_url: str = ""
    chat_key: str = ""
    columns: dict[str, str] = field(default_factory=dict)
