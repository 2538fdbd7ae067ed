"""Evaluation display helpers: word diffs and grades. Every text is escaped here; only
the <del>/<ins> markup this module writes is trusted."""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from batches.compare import word_diff

register = template.Library()


def _side(pieces: list[tuple[str, str]], side: str) -> SafeString:
    """One side of a diff: "a" shows what was removed (<del>), "b" what was added (<ins>)."""
    marked = "delete" if side == "a" else "insert"
    tag = "del" if side == "a" else "ins"
    parts = []
    for op, text in pieces:
        if op == "equal":
            parts.append(("{}", (text,)))
        elif op == marked:
            # The spaces before a changed word stay outside the mark.
            words = text.lstrip()
            parts.append((f"{{}}<{tag}>{{}}</{tag}>", (text[: len(text) - len(words)], words)))
    return format_html_join("", "{}", ((format_html(fmt, *args),) for fmt, args in parts))


@register.simple_tag
def diff_pair(a: str, b: str) -> dict[str, SafeString]:
    """`{% diff_pair a b as diff %}` then `{{ diff.a }}` / `{{ diff.b }}`: the two texts
    side by side, words only in `a` struck out, words only in `b` marked as added."""
    pieces = word_diff(a or "", b or "")
    return {"a": _side(pieces, "a"), "b": _side(pieces, "b")}


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{round(value * 100)} %"


@register.filter
def score(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}"


@register.simple_tag
def grade_mark(value: bool | None) -> str:
    """✓ / ✗ / — with a text for screen readers."""
    if value is None:
        return format_html(
            '<span title="{0}">—<span class="visually-hidden">{0}</span></span>', _("not graded")
        )
    if value:
        return format_html(
            '<span class="grade-ok">✓<span class="visually-hidden"> {}</span></span>', _("yes")
        )
    return format_html(
        '<span class="grade-bad">✗<span class="visually-hidden"> {}</span></span>', _("no")
    )
