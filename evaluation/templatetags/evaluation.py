"""Evaluation display helpers: word diffs and grades. Every text is escaped here; only
the <del>/<ins> markup this module writes is trusted."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.html import conditional_escape, escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from evaluation.compare import diff_sides, word_diff

register = template.Library()


def _side(pieces: list[tuple[bool, str]], tag: str) -> SafeString:
    """One side of a diff, its changed words in <tag> (the spaces before a word stay
    outside the mark); every text escaped."""
    parts = []
    for changed, text in pieces:
        if not changed:
            parts.append(conditional_escape(text))
            continue
        words = text.lstrip()
        parts.append(format_html("{}<{}>{}</{}>", text[: len(text) - len(words)], tag, words, tag))
    return mark_safe("".join(parts))  # noqa: S308 - every piece above is escaped


@register.simple_tag
def diff_pair(a: str, b: str) -> dict[str, SafeString]:
    """`{% diff_pair a b as diff %}` then `{{ diff.a }}` / `{{ diff.b }}`: the two texts
    side by side, words only in `a` struck out (<del>), words only in `b` marked (<ins>)."""
    side_a, side_b = diff_sides(a or "", b or "")
    return {"a": _side(side_a, "del"), "b": _side(side_b, "ins")}


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{round(value * 100)} %"


@register.filter
def score(value: float | None) -> str:
    if value is None:
        return "—"
    # In the page's language: 0.14 in English, 0,14 in French.
    return number_format(value, 2)


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


@register.filter
def rate_value(value: float | None, name: str) -> str:
    """A compared rate (evaluation.compare.RATES) as on the summary: a score for the mean
    similarity, a percentage for the others."""
    return score(value) if name == "mean_similarity" else percent(value)


@register.filter
def rate_delta(rate) -> str:
    """A RateDelta's difference, signed: "+0.05" for the mean similarity, "+12 pts"
    (percentage points) for the others; "—" when either run has no value."""
    delta = rate.delta
    if delta is None:
        return "—"
    sign = "+" if delta > 0 else ("−" if delta < 0 else "±")
    if rate.name == "mean_similarity":
        return sign + number_format(abs(delta), 2)
    return sign + _("%(points)s pts") % {"points": round(abs(delta) * 100)}


@register.simple_tag
def word_diff_html(previous: str, current: str) -> SafeString:
    """`current` with the words it added over `previous` in <ins> and the words it
    dropped in <del>, in reading order; every text escaped."""
    parts = []
    last = ""
    for op, text in word_diff(previous or "", current or ""):
        if op == "insert" and last == "delete" and not text[:1].isspace():
            text = " " + text  # a replacement at the start: the two words apart
        last = op
        if op == "equal":
            parts.append(conditional_escape(text))
            continue
        words = text.lstrip()
        tag = "ins" if op == "insert" else "del"
        parts.append(format_html("{}<{}>{}</{}>", text[: len(text) - len(words)], tag, words, tag))
    return mark_safe("".join(parts))  # noqa: S308 - every piece above is escaped


@register.filter
def lookup(mapping: dict, key):
    """`{{ labels|lookup:value }}`: a dict's value for a key held in a variable."""
    return mapping.get(key, "") if mapping else ""


def _mark(value: bool | None) -> str:
    return "—" if value is None else ("✓" if value else "✗")


@register.simple_tag
def grid_cell(cell, grid_run, texts: dict) -> SafeString:
    """One question in one run of the set grid (`evaluation.selectors.Cell`): its verdict
    linked to the chat, or with repeats passes/k, a link per answer, pass@k and pass^k.
    Drawn here rather than by an included template: a grid page has hundreds of cells.
    `texts` holds the page's translated words (set_views.cell_texts); all text escaped."""
    verdicts = texts["verdicts"]
    state = cell.state if cell.k else "none"
    opening = f'<td class="grid-cell cell-{state}" data-label="{escape(grid_run.cell_label)}">'
    if cell.reviewed:
        # An expert reviewed (some of) its answers: marked, the count for readers.
        reviewed = escape(texts["reviewed"])
        count = f" {cell.reviewed}/{cell.k}" if cell.k > 1 else ""
        opening += (
            f'<span class="cell-reviewed" title="{reviewed}{count}">✎'
            f'<span class="visually-hidden"> {reviewed}{count}</span></span> '
        )
    if not cell.k:
        return mark_safe(  # noqa: S308 - escaped above and here
            f'{opening}<span class="turn-meta">—<span class="visually-hidden"> '
            f"{escape(texts['no_answer'])}</span></span></td>"
        )
    if cell.k == 1:
        link = (
            f'<a href="/chats/{escape(cell.chat_ids[0])}/" title="{escape(texts["open_chat"])}">'
            f"{escape(verdicts.get(cell.verdicts[0], ''))}</a>"
        )
        return mark_safe(f"{opening}{link}</td>")  # noqa: S308 - every piece escaped
    links = "".join(
        f'<a href="/chats/{escape(chat_id)}/" class="repeat repeat-{verdict or "none"}">{n}'
        f'<span class="visually-hidden"> ({escape(verdicts.get(verdict, ""))})</span></a>'
        for n, verdict, chat_id in cell.repeats
    )
    result = cell.result
    k = cell.k
    return mark_safe(  # noqa: S308 - every piece escaped
        f'{opening}<span class="cell-count">{cell.passes}/{k}</span>'
        f'<span class="visually-hidden"> {escape(texts["passed"])}</span> '
        f'<span class="cell-repeats">{links}</span>'
        f'<small class="cell-k">pass@{k} {_mark(result.pass_at_k)} · '
        f"pass^{k} {_mark(result.pass_all_k)}</small></td>"
    )
