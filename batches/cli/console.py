"""What `manage.py run_batch` prints: the progress line, the estimate before the batch
starts, what the provider's quota or an outage is doing to the run."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import OutputWrapper

from batches.models import Batch

# Without a terminal (logs, CI), one progress line this often.
LOG_EVERY_SECONDS = 5.0


class Progress:
    """Rows per second, ETA and failures: a `\\r` line on a terminal, else a line per few s."""

    def __init__(self, out: OutputWrapper, *, total: int, finished: int, tty: bool) -> None:
        self.out = out
        self.total = total
        self.start_finished = finished
        self.tty = tty
        self.started = time.monotonic()
        self.last_line = 0.0
        self.last_finished: int | None = None
        self.width = 0

    def update(self, *, finished: int, failed: int, force: bool = False, note: str = "") -> None:
        now = time.monotonic()
        if force and finished == self.last_finished:
            return  # the closing line would repeat the last one
        if not self.tty and not force and now - self.last_line < LOG_EVERY_SECONDS:
            return
        self.last_line = now
        self.last_finished = finished
        elapsed = now - self.started
        rate = (finished - self.start_finished) / elapsed if elapsed > 0 else 0.0
        left = max(self.total - finished, 0)
        eta = clock(left / rate) if rate > 0 else "?"
        percent = 100 * finished // self.total if self.total else 100
        line = (
            f"{finished:,}/{self.total:,} rows ({percent}%)  {failed:,} failed  "
            f"{rate:.1f} rows/s  ETA {eta}"
        ) + (f"  {note}" if note else "")
        if self.tty:
            # Pad over the previous line, which may have been longer.
            self.out.write("\r" + line.ljust(self.width), ending="")
            self.width = len(line)
        else:
            self.out.write(line)
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.out.write("")
            self.out.flush()


def interactive(stream) -> bool:
    """Whether someone can answer on `stream` (None or closed: no standard input)."""
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def money(amount) -> str:
    return f"{float(amount or 0):,.4f} {settings.AI_PRICE_CURRENCY}"


def estimate_lines(estimate: dict, *, budget=None) -> list[str]:
    """The estimate as run_batch prints it before the batch starts."""
    calls, tokens, cost, duration = (
        estimate["calls"],
        estimate["tokens"],
        estimate["cost"],
        estimate["duration"],
    )
    unit = "words" if tokens["words"] else "tokens"
    counted = "" if tokens["exact"] or tokens["words"] else ", approximate"
    lines = [
        f"Estimate: {calls['total']:,} provider calls ({calls['answer']:,} answers, "
        f"{calls['judge']:,} judge, {calls['guard']:,} guard); "
        f"{tokens['input']:,} input and {tokens['output']:,} output {unit} "
        f"({tokens['basis']}, counted with {tokens['counted_by']}{counted}).",
    ]
    if cost["known"]:
        lines.append(
            f"Cost: {money(cost['realtime'])} in real time, {money(cost['economy'])} in "
            f"economy mode (prices of {cost['price']['date'] or cost['price']['source']})."
        )
    else:
        lines.append(
            "Cost: unknown: no price for this model (set AI_PRICES or add it in the admin)."
        )
    lines.append(
        f"Duration: about {clock(duration['seconds'])} at concurrency "
        f"{duration['concurrency']} (limited by {duration['limited_by']})."
    )
    if budget is not None:
        lines.append(f"Budget: {money(budget)}.")
    return lines


def throttle_note(batch: Batch, concurrency: int, *, remaining: int) -> str:
    """What the provider's quota, or an outage, is doing to this run, if anything."""
    from chats.services import OUTAGE_REASONS, limits_snapshot, outage_snapshot

    parts = []
    outage = outage_snapshot(batch.ai_provider, batch.model)
    if outage is not None:
        last = outage["last_success"]
        seen = time.strftime("%H:%M:%S", time.localtime(last)) if last else "none yet"
        parts.append(
            f"the provider does not answer ({OUTAGE_REASONS.get(outage['reason'], outage['reason'])}),"
            f" retrying; {remaining} rows waiting; last answer: {seen}"
        )
    shot = limits_snapshot(batch.ai_provider, batch.model)
    if shot is None:
        return "; ".join(parts)
    left = shot["until"] - time.time()
    if left > 0:
        parts.append(f"waiting for the provider's rate limit, resumes in {left:.0f} s")
    if shot["limit"] is not None:
        parts.append(f"{shot['in_flight']}/{min(shot['limit'], concurrency)} calls in flight")
    return "; ".join(parts)


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
