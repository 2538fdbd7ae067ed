"""`Finding`: where a detector found something (start, end, kind), over the question."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Finding:
    start: int
    end: int
    kind: str = field(compare=False)
