"""Disguises undone before detection, with a map back to the characters as written.

A personal value can be written so that a pattern reading the text as typed misses it:
fullwidth digits (`０４６ ４５４ ２８６`), a fullwidth `＠`, zero-width spaces between
digits or inside a postal code, digits parted by no-break spaces, en dashes, `_` or `/`.
`normalise(text)` returns the text the detectors read:

1. each character through Unicode NFKC (fullwidth forms, `＠` as `@`, ligatures), and
   any other decimal digit (Arabic-Indic, Devanagari...) as its ASCII digit;
2. format characters (category Cf: zero-width spaces and joiners, soft hyphens, the
   byte-order mark) removed;
3. every space kind as a space and every dash kind as `-`; `_` and `/` between two digits
   as `-`, so they part digit groups as a hyphen does (dates stay dates: 2024/03/01).

with `starts` and `ends`: the original span of each normalised character, so a finding
over normalised characters [a, b) covers the original characters [starts[a], ends[b-1])
(`to_original`): the placeholder then replaces exactly the value as written, the removed
characters inside it included.

Per character, not NFKC over the whole text: composition across characters would break
the one-to-many map, and the characters NFKC composes (a letter and a combining accent)
do not hide numbers. ASCII text (most questions) takes a fast path with no map.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_DIGIT_JOINER = re.compile(r"(?<=\d)[_/](?=\d)")
# Dashes NFKC leaves as they are: every Pd character, and the minus sign (Sm).
_DASHES = {"\u2212", "\u2796", "\ufe63", "\uff0d"}


@dataclass(frozen=True)
class Normalised:
    text: str
    starts: tuple[int, ...] | None = None  # None: same positions as the original
    ends: tuple[int, ...] | None = None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None or end <= start:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _one(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category == "Zs" or char in "\u2028\u2029":
        return " "
    if category == "Pd" or char in _DASHES:
        return "-"
    if char.isdecimal():
        return str(unicodedata.decimal(char))
    out = unicodedata.normalize("NFKC", char)
    # A fullwidth or compatibility form may turn into a dash or a space kind itself.
    return "".join(_one(piece) if piece != char else piece for piece in out)


def normalise(text: str) -> Normalised:
    """The text the detectors read, and its map back (see the module docstring)."""
    if text.isascii():
        if "_" in text or "/" in text:
            # One character for one: positions are kept.
            return Normalised(_DIGIT_JOINER.sub("-", text))
        return Normalised(text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for index, char in enumerate(text):
        out = char if char.isascii() else _one(char)
        for piece in out:
            pieces.append(piece)
            starts.append(index)
            ends.append(index + 1)
    normalised = _DIGIT_JOINER.sub("-", "".join(pieces))
    return Normalised(normalised, tuple(starts), tuple(ends))
