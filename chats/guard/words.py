"""The guard's word lists: loading them from `data/` and matching them on words.

Every list is a data file beside this module (`data/<name>.txt`: one entry a line, `#`
lines say what the list is, its source and date), read once at first use. Settings add to
the profanity and threat lists (`GUARD_PROFANITY_WORDS`, `GUARD_THREAT_WORDS`,
comma-separated); nothing here is ever logged or shown.

Matching rules of the profanity, threat and injection lists: case and accents are
ignored, an entry matches whole words only, spaces inside an entry match any run of
spaces, and a trailing `*` matches any word ending (`fuck*` also finds "fucking",
"fucker").

Word lists are matched on words, not with one big regex (an alternation of a hundred
accent-blind phrases costs ~0.4 ms a question; a dictionary look-up per word ~0.01 ms).
Text is folded character for character (lower case, accents and typographic apostrophes
removed), so positions in the folded text are positions in the question.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

DATA = Path(__file__).resolve().parent / "data"

_FOLD = str.maketrans(
    "ÀÂÄÁÃÅàâäáãåÈÉÊËèéêëÎÏÍÌîïíìÔÖÓÒÕôöóòõÙÛÜÚùûüúÇçŸÝÿýÑñ’‘",
    "AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcYYyyNn''",
)
WORD = re.compile(r"\w+")


@functools.cache
def word_list(name: str) -> tuple[str, ...]:
    """The entries of `data/<name>.txt`, in file order (comment and blank lines left out)."""
    text = (DATA / f"{name}.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


@functools.cache
def word_set(name: str) -> frozenset[str]:
    return frozenset(word_list(name))


def alternation(name: str) -> str:
    """The entries of a list as a regex alternation, in file order (no group)."""
    return "|".join(re.escape(entry) for entry in word_list(name))


def fold(text: str) -> str:
    """Lower case without accents, one character for one (positions are kept)."""
    folded = text.translate(_FOLD).lower()
    if len(folded) != len(text):  # a rare character whose lower case is longer ("İ")
        folded = "".join((char.translate(_FOLD).lower() or " ")[0] for char in text)
    return folded


@dataclass(frozen=True)
class _Entry:
    words: tuple[str, ...]
    wildcard: bool  # the last word may go on ("fuck*": "fucking")
    kind: str


@dataclass(frozen=True)
class _WordIndex:
    exact: dict[str, tuple[_Entry, ...]]  # the word -> one-word entries
    pairs: dict[tuple[str, str], tuple[_Entry, ...]]  # first two words -> longer entries
    first_words: frozenset[str]
    prefixes: tuple[str, ...]  # first words of wildcard single-word entries
    by_prefix: dict[str, tuple[_Entry, ...]]


def _entry(text: str, kind: str) -> _Entry | None:
    wildcard = text.strip().endswith("*")
    words = tuple(WORD.findall(fold(text.strip().rstrip("*"))))
    return _Entry(words, wildcard, kind) if words else None


@functools.lru_cache(maxsize=16)
def _word_index(extra_threats: tuple[str, ...], extra_profanity: tuple[str, ...]) -> _WordIndex:
    """The index of the built-in lists plus the settings' words (cached per settings)."""
    exact: dict[str, list[_Entry]] = {}
    pairs: dict[tuple[str, str], list[_Entry]] = {}
    by_prefix: dict[str, list[_Entry]] = {}
    lists = (
        ("injection", word_list("injection_phrases")),
        ("threat", word_list("threats") + extra_threats),
        ("profanity", word_list("profanity") + extra_profanity),
    )
    for kind, entries in lists:
        for text in entries:
            entry = _entry(text, kind)
            if entry is None:
                continue
            if entry.wildcard and len(entry.words) == 1:
                by_prefix.setdefault(entry.words[0], []).append(entry)
            elif len(entry.words) == 1:
                exact.setdefault(entry.words[0], []).append(entry)
            else:
                pairs.setdefault(entry.words[:2], []).append(entry)
    return _WordIndex(
        exact={word: tuple(entries) for word, entries in exact.items()},
        pairs={pair: tuple(entries) for pair, entries in pairs.items()},
        first_words=frozenset([*exact, *(pair[0] for pair in pairs)]),
        prefixes=tuple(by_prefix),
        by_prefix={word: tuple(entries) for word, entries in by_prefix.items()},
    )


def _settings_words(name: str) -> tuple[str, ...]:
    value = getattr(settings, name, ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(word) for word in value if str(word).strip())


def _current_word_index() -> _WordIndex:
    return _word_index(
        _settings_words("GUARD_THREAT_WORDS"), _settings_words("GUARD_PROFANITY_WORDS")
    )


def find_listed_words(folded: str, words: list[str]) -> list[tuple[int, int, str]]:
    """Profanity, threats and injection phrases in `folded` (see the module docstring), as
    (start, end, kind). `words` are the words of `folded` (`WORD.findall`)."""
    index = _current_word_index()
    prefixes = index.prefixes
    if index.first_words.isdisjoint(words) and not (
        prefixes and any(word.startswith(prefixes) for word in words)
    ):
        return []  # the usual case: no word starts an entry
    spans: list[tuple[int, int, str]] = []
    tokens = [(match.group(0), match.start(), match.end()) for match in WORD.finditer(folded)]
    words = [token[0] for token in tokens]
    count = len(words)
    first_words = index.first_words
    for position, word in enumerate(words):
        if word not in first_words and not (prefixes and word.startswith(prefixes)):
            continue
        candidates = index.exact.get(word, ())
        if position + 1 < count:
            candidates += index.pairs.get((word, words[position + 1]), ())
        if prefixes and word.startswith(prefixes):
            candidates += tuple(
                entry
                for prefix in prefixes
                if word.startswith(prefix)
                for entry in index.by_prefix[prefix]
            )
        for entry in candidates:
            last = position + len(entry.words) - 1
            if last >= count:
                continue
            head, tail = words[position:last], words[last]
            if head != list(entry.words[:-1]):
                continue
            if tail == entry.words[-1] or (entry.wildcard and tail.startswith(entry.words[-1])):
                spans.append((tokens[position][1], tokens[last][2], entry.kind))
    return spans
