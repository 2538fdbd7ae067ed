"""What every batch page uses: the batch of the request (with the staff rule), the
runner the pages may drive, the `next` URL, flash messages out of band, grade summaries."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from batchchat.single_flight import single_flight
from batches import hooks, runners
from batches.models import Batch
from batches.selectors import STAFF_READ_ONLY, batch_for, may_act_on, worker_alive

T = TypeVar("T")


def _get_batch_for_user(
    request: HttpRequest, pk: int, *, act: bool = False, shared: bool = True
) -> Batch:
    """The batch when the user may see it (own, shared with them as reviewer unless not
    `shared`, or staff); 404 otherwise. With `act`, 403 when they may see it but not
    change it (staff on another user's batch); a reviewer gets 404, as a stranger."""
    batch = batch_for(request.user, pk, shared=shared)
    if batch is None:
        raise Http404
    if act and not may_act_on(request.user, batch):
        if not request.user.is_staff:
            raise Http404
        raise PermissionDenied(_(STAFF_READ_ONLY))
    return batch


def _inline() -> bool:
    """No broker: the pages may drive slices (only while no worker is alive)."""
    return runners.runner_mode() == "inline"


def _runner_context(batch: Batch | None = None) -> dict:
    """What the inline driver needs: may the page drive, and is a worker doing it (read
    from `batch`'s activity annotation when given: no query)."""
    inline = _inline()
    alive = getattr(batch, "worker_alive", None)
    if inline and alive is None:
        alive = worker_alive()
    return {"inline": inline, "worker_alive": inline and alive}


def _poll_token(batch: Batch) -> str:
    """What a poll of `batch` has seen, as "rows.rest": `rows` changes with the rows'
    counters and status (the rows section and the grades follow them: a row is graded in
    the transaction that counts it), `rest` with anything else the progress section shows
    (the engine's last write, who works on it, the provider's throttle or outage)."""
    rows = f"{batch.status}-{batch.total_items}-{batch.processed_items}-{batch.failed_items}"
    rest = json.dumps(
        [batch.updated_at.timestamp(), batch.activity, batch.throttle], sort_keys=True
    )
    return f"{rows}.{zlib.crc32(rest.encode()):08x}"


def _next_url(request: HttpRequest, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def _with_messages(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Append pending flash messages, swapped out of band into the live region."""
    response.write(render_to_string("includes/messages_oob.html", request=request))
    return response


# An active batch's summaries (its grades, its reviews: each one aggregate over its rows)
# are shared for a few seconds by the pages and polls of everyone watching it (Django's
# cache): while a batch runs at 50 rows a second nearly every poll sees a new count, and
# 20 users asking those aggregates at each poll took the cores the batch and the pages
# need. Their figures may be this much behind the counters while it runs; a finished
# batch's are always read anew.
RUNNING_SUMMARY_SECONDS = 5


def _running_key(batch: Batch, name: str) -> str:
    return f"batchchat:running-{name}:{batch.pk}:{batch.created_at.timestamp()}"


def _shared_while_active(batch: Batch, name: str, compute: Callable[[], T]) -> T:
    """`compute()`, shared as above (RUNNING_SUMMARY_SECONDS) while `batch` is active."""
    if not batch.is_active:
        return compute()
    key = _running_key(batch, name)
    value = cache.get(key)
    if value is None:
        # Users who miss together wait for the first one's figures (single_flight).
        with single_flight(key):
            value = cache.get(key)
            if value is None:
                value = compute()
                cache.set(key, value, RUNNING_SUMMARY_SECONDS)
    return value


def _shared_at_counters(batch: Batch, name: str, compute: Callable[[], T]) -> T:
    """`compute()`, shared as `_shared_while_active` but under the batch's rows token (the
    rows' counters and status, see `_poll_token`): for the counts that move with them (the
    rows per status, per guard outcome), read once by everyone watching a running batch
    at the same counters instead of at each of their polls. Only the split between pending
    and running rows (rows claimed, not yet counted) may be up to RUNNING_SUMMARY_SECONDS
    behind; a page whose counters do not move is answered 204 and keeps its own anyway."""
    rows = _poll_token(batch).split(".")[0]
    return _shared_while_active(batch, f"{name}-{rows}", compute)


def _attach_grades(batches: list[Batch]) -> None:
    """`batch.grades` (a GradeSummary) on each batch: one query for those not shared
    (every batch not active, an active one whose summary is older than
    RUNNING_SUMMARY_SECONDS)."""
    keys = {batch.pk: _running_key(batch, "grades") for batch in batches if batch.is_active}
    shared = cache.get_many(keys.values()) if keys else {}
    missing = [batch.pk for batch in batches if keys.get(batch.pk) not in shared]
    summaries = hooks.graders().summaries(missing) if missing else {}
    fresh = {keys[pk]: summaries[pk] for pk in missing if pk in keys}
    if fresh:
        cache.set_many(fresh, RUNNING_SUMMARY_SECONDS)
    for batch in batches:
        key = keys.get(batch.pk)
        batch.grades = shared[key] if key in shared else summaries[batch.pk]


def _grade_filter_labels() -> list[tuple[str, str]]:
    return [
        ("", _("All rows")),
        ("failing_first", _("Failing first")),
        ("failing", _("Failing")),
        ("passing", _("Passing")),
        ("ungraded", _("Not graded")),
    ]
