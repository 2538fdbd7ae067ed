"""Where the app that judges answers plugs into batches (DESIGN "Layout", STYLE 3a).

`batches` runs batches and never imports `evaluation`; `evaluation` reads `batches`.
Yet the engine's writer grades each stored group, the batch pages and API show grade
summaries, and the detail page has an evaluation block. So `evaluation` registers one
`Graders` here when it starts (`EvaluationConfig.ready`), and batches calls through it.

Signatures (every one is called by batches, implemented by evaluation):

- `grade_items(*, items, verdicts)`: grade stored rows in memory and save the grades,
  inside the writer's transaction (no network call); `verdicts` maps an item's pk to the
  AI judge's verdict that came with its answer.
- `wants_judge(item, answer) -> bool` and `await judge(*, item, answer) -> (verdict, notes)`: the AI
  judge, asked by a slice beside the answer call (outside any transaction).
- `judge_request(*, item, answer) -> GenerationRequest` and
  `judge_reply(*, text, error="") -> (verdict, notes)`: the same judge as a request for a
  provider's batch API and its reply read back (economy mode's judge wave): one prompt,
  one parser, whichever way the call goes.
- `summaries(batch_ids) -> {batch_id: summary}`: one summary object per batch (a fixed
  number of queries); templates and the API read its attributes.
- `summary_text(summary) -> str`: one line for `run_batch`'s report.
- `detail_context(request, batch, *, grade) -> dict` and
  `detail_oob(request, response, batch) -> None`: the detail page's evaluation block, and
  its out-of-band refresh while the batch runs.

- `judge_rows(batch) -> int`: the rows the AI judge will have something to judge (the
  start step's projected calls, batches.estimate).
- `question_set_ids(batch_ids) -> {batch_id: question_set_id}`: the set each batch is a
  run of (one query).
- `question_results(items) -> {question_index: result}`: the k rows of each question
  read as one result (passes out of k, pass@k, pass^k, agreement of the answers); items
  with `interaction` loaded. The rows table and the export call it.

- `review_summary(batch_id) -> dict`: the reviews of a batch and the agreement of the
  automatic verdicts and the judge with them (API status), optional.
- `background_work() -> bool`: grade the next chunk of a running "Grade again" job (the
  AI judge's, which runs in the background); False when none runs. `run_worker` calls it
  when no batch has rows to answer, so judge jobs finish with no page open.

A process without `evaluation` installed has no graders: `graders()` then raises
ImproperlyConfigured, naming the app to install (grading is part of every batch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q


@dataclass(frozen=True)
class Graders:
    grade_items: Callable[..., None]
    wants_judge: Callable[[Any, str], bool]
    judge: Callable[..., Awaitable[tuple[str, str]]]
    summaries: Callable[[Iterable[int]], Mapping[int, Any]]
    summary_text: Callable[[Any], str]
    detail_context: Callable[..., dict]
    detail_oob: Callable[..., None]
    background_work: Callable[[], bool]
    judge_rows: Callable[[Any], int]
    question_set_ids: Callable[[Iterable[int]], Mapping[int, int]]
    question_results: Callable[[Iterable[Any]], Mapping[int, Any]]
    # The expert reviews' summary and agreement of one batch as a JSON-ready dict (the
    # API status), or None when no reviews app is installed.
    review_summary: Callable[[int], dict] | None = None
    # Economy mode's judge wave (see the module docstring); None: judged in real time.
    judge_request: Callable[..., Any] | None = None
    judge_reply: Callable[..., tuple[str, str]] | None = None


_registered: Graders | None = None


def register_graders(graders: Graders) -> None:
    """Called once by the evaluation app at start; a second call replaces the first (the
    test runner and autoreload may run `ready` again)."""
    global _registered
    _registered = graders


def graders() -> Graders:
    if _registered is None:
        raise ImproperlyConfigured(
            "No graders registered: add 'evaluation' to INSTALLED_APPS (it registers "
            "them in EvaluationConfig.ready)."
        )
    return _registered


# --- Question sets (evaluation): the batch list's set names and its filter by set ---------


@dataclass(frozen=True)
class RunSets:
    """`labels(batch_ids) -> {batch_id: label}`: each batch's question set (a label with
    `set_id`, `name` and `url`), one query; `batch_ids(set_id)`: a queryset of the ids of
    the set's batches (`values("batch_id")`), for `filter(pk__in=...)`."""

    labels: Callable[[Iterable[int]], Mapping[int, Any]]
    batch_ids: Callable[[int], Any]


_run_sets: RunSets | None = None


def register_run_sets(run_sets: RunSets) -> None:
    """Called by the evaluation app at start (like register_graders)."""
    global _run_sets
    _run_sets = run_sets


def run_sets() -> RunSets | None:
    """The registered RunSets; None without the evaluation app (the list shows no sets)."""
    return _run_sets


# --- Who else may read a batch (reviewers) ----------------------------------------------
#
# `evaluation` keeps the shares (a batch or a whole question set shared with a reviewer)
# and registers here a rule `(user) -> Q` over Batch: the batches shared with that user.
# batches.selectors.batches_for adds them to the user's own; actions stay the owner's
# (batches.selectors.may_act_on).

_reader_rules: dict[str, Callable[[Any], Q]] = {}


def register_reader_rule(name: str, rule: Callable[[Any], Q]) -> None:
    """Add (or, under the same name, replace) a rule of batches shared with a user."""
    _reader_rules[name] = rule


def shared_with(user) -> Q | None:
    """The batches shared with `user` by every registered rule; None when no rule."""
    condition = None
    for rule in _reader_rules.values():
        condition = rule(user) if condition is None else condition | rule(user)
    return condition
