"""Evaluation graders: each row's answer against the row's expected answer and citation.

Pure functions first (one per grader), then the services that grade BatchItems and save
the grades with one bulk_update.

- citation match: the cited URL equals the expected one once both are normalised
  (`normalise_url`: scheme, host case, `www.`, default port, trailing slash, query and
  fragment ignored); None when the row expects no citation.
- answer similarity: ROUGE-L F1 over words, 0..1 (`answer_similarity`): the longest
  common subsequence of the two word sequences (lower-cased, punctuation dropped), as
  precision against the answer and recall against the expected answer, combined by their
  harmonic mean. Word order counts, repeated words count once per occurrence; 1.0 means
  the same words in the same order. The LCS is rapidfuzz's `LCSseq` (C++, linear memory),
  so grading stays cheap inside the engine's grouped writer. None when the row expects no
  answer.
- answer found: the answer is not a "not found" / refusal reply (`chats.prompts.is_not_found`,
  the extractive answerer's and the prompt's wording, English and French).
- AI judge (optional, per batch): `chats.services.judge_answer`, verdict pass/fail with the
  key ideas found and missing; "error" (no verdict) when the call or its reply fails.
- verdict: pass / fail / ungraded with the check that decided it (`decide_verdict`), by
  the rules in order: expected outcome, expected citation, AI judge, similarity against
  GRADE_SIMILARITY_PASS.

Expected answers are scored without their markup (`clean_expected`: the origin's sentence
tags `<s-1>…</s-1>` and other tags); the original text is kept for display.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.utils import timezone
from rapidfuzz.distance import LCSseq

from batches.models import NOT_BLOCKED, Batch, BatchItem, JudgeVerdict, Verdict, VerdictReason
from chats.models import AnswerType, GuardStatus
from chats.prompts import answer_type_of
from chats.services import (
    JudgeReplyError,
    ProviderError,
    ProviderNotConfigured,
    is_not_found,
    judge_answer,
    parse_judge_reply,
    run_on_provider_loop,
)
from chats.services import judge_request as build_judge_request

if TYPE_CHECKING:
    from chats.providers.base import GenerationRequest
from evaluation.repeats import repeat_result
from evaluation.review import FAILING_REVIEWS, PASSING_REVIEWS

logger = logging.getLogger(__name__)

GRADE_FIELDS = (
    "citation_match",
    "answer_similarity",
    "answer_found",
    "judge_verdict",
    "judge_notes",
    "verdict",
    "verdict_reason",
    "graded_at",
)
GRADE_CHUNK = 500
_WORD = re.compile(r"\w+", re.UNICODE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


# --- Pure graders ---------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """`host/path` of `url` for comparison: scheme, host case, a leading `www.`, the
    default port, a trailing slash, the query and the fragment do not count. Text that is
    not an http(s) URL is only trimmed and lower-cased."""
    text = (url or "").strip()
    if not text:
        return ""
    if "://" not in text and not text.startswith("//"):
        text = "//" + text  # "www.canada.ca/x" is a URL without its scheme
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return (url or "").strip().lower()
    host = (parts.hostname or "").lower().removeprefix("www.")
    if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    return f"{host}{path}"


def citation_match(cited: str, expected: str) -> bool | None:
    if not (expected or "").strip():
        return None
    return bool(cited) and normalise_url(cited) == normalise_url(expected)


_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z][\w-]*(?:\s[^<>]*)?/?>")


def clean_expected(text: str) -> str:
    """`text` without markup (the origin's `<s-1>…</s-1>` sentence tags, HTML tags)."""
    if "<" not in (text or ""):
        return text or ""
    return _MARKUP.sub(" ", text)


def _words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def answer_similarity(answer: str, expected: str) -> float | None:
    """ROUGE-L F1 between the answer and the expected answer, in words (module docstring)."""
    reference = _words(clean_expected(expected))
    if not reference:
        return None
    candidate = _words(answer)
    if not candidate:
        return 0.0
    common = LCSseq.similarity(candidate, reference)
    if not common:
        return 0.0
    precision, recall = common / len(candidate), common / len(reference)
    return round(2 * precision * recall / (precision + recall), 4)


def answer_found(answer: str, language: str) -> bool:
    return not is_not_found(answer, language)


# Expected outcome -> the answer types that satisfy it. A refusal expected as not-gc is
# also right when the answer says it found nothing; "normal" and "not-blocked" are met by
# any answer of that kind and leave the decision to the checks that follow.
OUTCOME_PASSES: dict[str, frozenset[str]] = {
    AnswerType.NOT_GC: frozenset({AnswerType.NOT_GC, AnswerType.NOT_FOUND}),
    AnswerType.PT_MUNI: frozenset({AnswerType.PT_MUNI}),
    AnswerType.NOT_FOUND: frozenset({AnswerType.NOT_FOUND}),
    AnswerType.CLARIFYING: frozenset({AnswerType.CLARIFYING}),
    AnswerType.BLOCKED: frozenset({AnswerType.BLOCKED}),
}
_CONTINUE_ON = {
    AnswerType.NORMAL: frozenset({AnswerType.NORMAL}),
    NOT_BLOCKED: frozenset(t for t in AnswerType.values if t != AnswerType.BLOCKED),
}


def decide_verdict(
    *,
    expected_outcome: str,
    answer_type: str,
    citation_match: bool | None,
    judge_verdict: str,
    similarity: float | None,
    threshold: float,
) -> tuple[str, str]:
    """(verdict, reason) of one answered row, by the first rule that decides:

    1. expected outcome: an answer of another type fails; a refusal, redirect, not-found,
       clarifying question or block that was expected passes;
    2. expected citation: the cited URL matches or not;
    3. AI judge: its pass / fail (no verdict goes on to the next rule);
    4. similarity: at or above `threshold` passes;
    5. an expected "normal" or "not-blocked" outcome that was met passes;
    otherwise ungraded (nothing to grade against)."""
    outcome_met = False
    if expected_outcome in OUTCOME_PASSES:
        if answer_type in OUTCOME_PASSES[expected_outcome]:
            return Verdict.PASS, VerdictReason.OUTCOME
        return Verdict.FAIL, VerdictReason.OUTCOME
    if expected_outcome in _CONTINUE_ON:
        if answer_type not in _CONTINUE_ON[expected_outcome]:
            return Verdict.FAIL, VerdictReason.OUTCOME
        outcome_met = True
    if citation_match is not None:
        return (Verdict.PASS if citation_match else Verdict.FAIL), VerdictReason.CITATION
    if judge_verdict in (JudgeVerdict.PASS, JudgeVerdict.FAIL):
        return judge_verdict, VerdictReason.JUDGE
    if similarity is not None:
        return (Verdict.PASS if similarity >= threshold else Verdict.FAIL), (
            VerdictReason.SIMILARITY
        )
    if outcome_met:
        return Verdict.PASS, VerdictReason.OUTCOME
    return Verdict.UNGRADED, VerdictReason.NOTHING


def set_verdict(
    item: BatchItem, *, threshold: float | None = None, answer_type: str | None = None
) -> None:
    """The row's verdict from its grades (in memory); a row without an answer has none.
    `answer_type`: the interaction's, when the caller has it already."""
    interaction = item.interaction
    if interaction is None:
        item.verdict = item.verdict_reason = ""
        return
    item.verdict, item.verdict_reason = decide_verdict(
        expected_outcome=item.expected_outcome,
        answer_type=answer_type or _answer_type(interaction),
        citation_match=item.citation_match,
        judge_verdict=item.judge_verdict,
        similarity=item.answer_similarity,
        threshold=settings.GRADE_SIMILARITY_PASS if threshold is None else threshold,
    )


def _answer_type(interaction) -> str:
    if interaction.answer_type:
        return interaction.answer_type
    if interaction.guard_status == GuardStatus.BLOCKED:
        return AnswerType.BLOCKED
    return answer_type_of(interaction.answer, None)


# --- Services -------------------------------------------------------------------------------


async def judge(*, item: BatchItem, answer: str) -> tuple[str, str]:
    """(verdict, notes) of the AI judge for one row's `answer`: one provider call through
    the chat pipeline's provider (its retry policy and quota), on the provider loop; never
    raising. The engine awaits it beside the answer; re-grading gathers many."""
    chat = item.chat
    try:
        verdict = await judge_answer(
            ai_provider=chat.ai_provider,
            model=chat.model,
            question=item.question,
            expected_answer=item.expected_answer,
            answer=answer,
        )
    except (ProviderError, ProviderNotConfigured, JudgeReplyError) as exc:
        return JudgeVerdict.ERROR, str(exc)[:2000]
    return verdict.verdict, verdict.notes[:4000]


def judge_request(*, item: BatchItem, answer: str) -> GenerationRequest:
    """The request `judge` sends for one row's `answer`, for a provider's batch API
    (economy mode's judge wave); ProviderError when the batch's provider cannot judge."""
    chat = item.chat
    return build_judge_request(
        ai_provider=chat.ai_provider,
        model=chat.model,
        question=item.question,
        expected_answer=item.expected_answer,
        answer=answer,
    )


def judge_reply(*, text: str | None, error: str = "") -> tuple[str, str]:
    """(verdict, notes) from the judge's reply `text` that came back from a provider's
    batch API, as `judge` makes them from a real-time reply; no text: "no verdict" with
    `error` (the provider's reason), as a failed real-time call."""
    if text is None:
        return JudgeVerdict.ERROR, (error or "The judge's call failed.")[:2000]
    try:
        verdict = parse_judge_reply(text)
    except JudgeReplyError as exc:
        return JudgeVerdict.ERROR, str(exc)[:2000]
    return verdict.verdict, verdict.notes[:4000]


def wants_judge(item: BatchItem, answer: str) -> bool:
    """Whether the judge has something to grade: an expected answer and an answer."""
    return bool(item.expected_answer.strip() and answer.strip())


def judge_rows(batch: Batch) -> int:
    """The rows of `batch` the judge will have something to judge (an expected answer;
    `wants_judge` once the answer is in): the start step's projected judge calls."""
    return batch.items.exclude(expected_answer="").count()


def grade_item(item: BatchItem, *, now=None) -> bool:
    """Set the local grades of one row in memory (item.interaction and item.chat loaded);
    the judge's fields are cleared. Returns whether the judge can grade this row."""
    interaction = item.interaction
    item.graded_at = now or timezone.now()
    item.judge_verdict, item.judge_notes = "", ""
    if interaction is None:
        item.citation_match = item.answer_similarity = item.answer_found = None
        item.verdict = item.verdict_reason = ""
        return False
    item.citation_match = citation_match(interaction.citation_url, item.expected_citation_url)
    item.answer_similarity = answer_similarity(interaction.answer, item.expected_answer)
    answer_type = _answer_type(interaction)
    blocked = answer_type == AnswerType.BLOCKED
    # A blocked row gave no answer, whatever its fixed message says.
    item.answer_found = (
        False if blocked else answer_found(interaction.answer, item.chat.page_language)
    )
    set_verdict(item, answer_type=answer_type)
    return not blocked and wants_judge(item, interaction.answer)


def grade_items(
    *, items: Sequence[BatchItem], verdicts: dict[int, tuple[str, str]] | None = None
) -> int:
    """Grade `items` (with `interaction` and `chat` loaded, e.g. select_related) and save
    the grades with one bulk_update. With `verdicts` (the engine's, judged beside the
    answers: item pk -> (verdict, notes)) those are the judge's grades; without, the AI
    judge runs here for items of batches that enable it (one query to know which), up to
    BATCH_CONCURRENCY calls at once on the provider loop. Returns the number of items
    graded. Call it outside the provider loop."""
    if not items:
        return 0
    now = timezone.now()
    if verdicts is not None:
        for item in items:
            grade_item(item, now=now)
            item.judge_verdict, item.judge_notes = verdicts.get(item.pk, ("", ""))
            if item.judge_verdict:
                set_verdict(item)
    else:
        batch_ids = {item.batch_id for item in items}
        judged = set(
            Batch.objects.filter(pk__in=batch_ids, judge_enabled=True).values_list("pk", flat=True)
        )
        to_judge = [item for item in items if grade_item(item, now=now) and item.batch_id in judged]
        if to_judge:
            found = run_on_provider_loop(_judge_all(to_judge))
            for item, (verdict, notes) in zip(to_judge, found, strict=True):
                item.judge_verdict, item.judge_notes = verdict, notes
                set_verdict(item)
    _save_grades(items)
    return len(items)


def _save_grades(items: Sequence[BatchItem]) -> None:
    """Rows with the same grades (most rows of a batch without expectations differ only in
    `answer_found`) are saved with one UPDATE each; a bulk_update's CASE per row and field
    is kept for rows whose grades differ."""
    groups: dict[tuple, list[int]] = {}
    for item in items:
        key = tuple(getattr(item, name) for name in GRADE_FIELDS)
        groups.setdefault(key, []).append(item.pk)
    if len(groups) * 4 > len(items):
        BatchItem.objects.bulk_update(items, GRADE_FIELDS, batch_size=GRADE_CHUNK)
        return
    for values, pks in groups.items():
        BatchItem.objects.filter(pk__in=pks).update(**dict(zip(GRADE_FIELDS, values, strict=True)))


async def _judge_all(items: Sequence[BatchItem]) -> list[tuple[str, str]]:
    slots = asyncio.Semaphore(max(1, int(settings.BATCH_CONCURRENCY)))

    async def one(item: BatchItem) -> tuple[str, str]:
        async with slots:
            return await judge(item=item, answer=item.interaction.answer)

    return await asyncio.gather(*(one(item) for item in items))


def _gradable(batch_id: int):
    return (
        BatchItem.objects.filter(batch_id=batch_id, status=BatchItem.Status.DONE)
        .select_related("chat", "interaction")
        .order_by("position")
    )


def grade_finished_items(*, batch_id: int) -> int:
    """Grade the batch's answered rows that have no grades yet, in chunks; the engine calls
    this after a slice (rows graded by the grouped writer are not graded twice)."""
    total = 0
    while chunk := list(_gradable(batch_id).filter(graded_at__isnull=True)[:GRADE_CHUNK]):
        total += grade_items(items=chunk)
    return total


def regrade_batch(*, batch: Batch, judge_enabled: bool | None = None) -> int:
    """Grade every answered row of `batch` again (new expectations, the judge switched on
    or off with `judge_enabled`) without answering anything again. Returns the number of
    rows graded."""
    if judge_enabled is not None and judge_enabled != batch.judge_enabled:
        batch.judge_enabled = judge_enabled
        Batch.objects.filter(pk=batch.pk).update(judge_enabled=judge_enabled)
    total = 0
    last = -1
    while chunk := list(_gradable(batch.pk).filter(position__gt=last)[:GRADE_CHUNK]):
        total += grade_items(items=chunk)
        last = chunk[-1].position
    clear_lost_grades(batch)
    return total


def clear_lost_grades(batch: Batch) -> None:
    """Rows that lost their answer (retried and now failed) lose their grades too."""
    batch.items.exclude(status=BatchItem.Status.DONE).exclude(graded_at__isnull=True).update(
        citation_match=None,
        answer_similarity=None,
        answer_found=None,
        judge_verdict="",
        judge_notes="",
        verdict="",
        verdict_reason="",
        graded_at=None,
    )


# --- Summaries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeSummary:
    """A batch's grades: each rate with the number of rows it is computed over."""

    citation_checked: int = 0
    citation_matched: int = 0
    similarity_count: int = 0
    similarity_mean: float | None = None
    found_checked: int = 0
    found: int = 0
    judged: int = 0
    judge_passed: int = 0
    judge_no_verdict: int = 0
    # Verdicts: graded = pass + fail; ungraded rows had nothing to grade against.
    verdict_graded: int = 0
    verdict_passed: int = 0
    verdict_ungraded: int = 0
    # Rows with an expected outcome, and those whose outcome rule did not fail them.
    outcome_checked: int = 0
    outcome_met: int = 0
    # The guard against an expected blocking column (expected outcome blocked / not-blocked).
    guard_true_blocks: int = 0
    guard_false_blocks: int = 0
    guard_missed_blocks: int = 0
    # Rows whose verdict is an expert's review (counted in verdict_graded / passed).
    expert_reviewed: int = 0
    # A batch with repeats (k > 1): its questions, and those with at least one pass
    # (pass@k) and with every repeat passing (pass^k), by evaluation.repeats; the rates
    # are over the questions with a graded repeat. 0 / None without repeats.
    repeats: int = 1
    questions: int = 0
    questions_graded: int = 0
    pass_at_k_count: int = 0
    pass_all_k_count: int = 0

    @property
    def pass_at_k_rate(self) -> float | None:
        return self._rate(self.pass_at_k_count, self.questions_graded)

    @property
    def pass_all_k_rate(self) -> float | None:
        return self._rate(self.pass_all_k_count, self.questions_graded)

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    @property
    def pass_rate(self) -> float | None:
        return self._rate(self.verdict_passed, self.verdict_graded)

    @property
    def outcome_accuracy(self) -> float | None:
        return self._rate(self.outcome_met, self.outcome_checked)

    @property
    def citation_match_rate(self) -> float | None:
        return self._rate(self.citation_matched, self.citation_checked)

    @property
    def answer_found_rate(self) -> float | None:
        return self._rate(self.found, self.found_checked)

    @property
    def judge_pass_rate(self) -> float | None:
        return self._rate(self.judge_passed, self.judged)

    @property
    def judge_failed(self) -> int:
        return self.judged - self.judge_passed

    @property
    def guard_blocked(self) -> int:
        """Blocked rows of those with an expected blocking: precision's denominator."""
        return self.guard_true_blocks + self.guard_false_blocks

    @property
    def guard_expected_blocks(self) -> int:
        """Rows expected blocked: recall's denominator."""
        return self.guard_true_blocks + self.guard_missed_blocks

    @property
    def guard_precision(self) -> float | None:
        return self._rate(self.guard_true_blocks, self.guard_blocked)

    @property
    def guard_recall(self) -> float | None:
        return self._rate(self.guard_true_blocks, self.guard_expected_blocks)

    @property
    def any(self) -> bool:
        return bool(
            self.citation_checked
            or self.similarity_count
            or self.found_checked
            or self.verdict_graded
            or self.verdict_ungraded
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "pass_rate": self.pass_rate,
            "verdict_graded": self.verdict_graded,
            "verdict_passed": self.verdict_passed,
            "verdict_ungraded": self.verdict_ungraded,
            "expert_reviewed": self.expert_reviewed,
            "outcome_accuracy": self.outcome_accuracy,
            "outcome_checked": self.outcome_checked,
            "citation_match_rate": self.citation_match_rate,
            "citation_checked": self.citation_checked,
            "mean_similarity": self.similarity_mean,
            "similarity_count": self.similarity_count,
            "answer_found_rate": self.answer_found_rate,
            "found_checked": self.found_checked,
            "judge_pass_rate": self.judge_pass_rate,
            "judged": self.judged,
            "judge_passed": self.judge_passed,
            "judge_failed": self.judge_failed,
            "judge_no_verdict": self.judge_no_verdict,
            "guard_precision": self.guard_precision,
            "guard_blocked": self.guard_blocked,
            "guard_recall": self.guard_recall,
            "guard_expected_blocks": self.guard_expected_blocks,
            "repeats": self.repeats,
            "questions": self.questions,
            "questions_graded": self.questions_graded,
            "pass_at_k_rate": self.pass_at_k_rate,
            "pass_at_k_count": self.pass_at_k_count,
            "pass_all_k_rate": self.pass_all_k_rate,
            "pass_all_k_count": self.pass_all_k_count,
        }


EMPTY_SUMMARY = GradeSummary()


_OUTCOME_GRADED = ~Q(expected_outcome="") & ~Q(verdict="")
# Reviews that say pass or fail (evaluation.review.REVIEW_AS_VERDICT; "cannot tell"
# leaves the automatic verdict in place).
_REVIEW_PASS = Q(interaction__review_verdict__in=PASSING_REVIEWS)
_REVIEW_FAIL = Q(interaction__review_verdict__in=FAILING_REVIEWS)
_DECISIVE_REVIEW = _REVIEW_PASS | _REVIEW_FAIL
_FINAL_PASS = _REVIEW_PASS | (Q(verdict=Verdict.PASS) & ~_DECISIVE_REVIEW)
_FINAL_FAIL = _REVIEW_FAIL | (Q(verdict=Verdict.FAIL) & ~_DECISIVE_REVIEW)
_WAS_BLOCKED = Q(interaction__answer_type=AnswerType.BLOCKED)


@functools.cache
def _summary_query() -> QuerySet:
    """The summary's aggregate, grouped by batch, built once: its many filtered counts
    cost more CPU to build than the query takes to run (about 3 ms on each page and
    poll that shows grades); each call adds its batches' filter (a WHERE: no aggregate)."""
    return (
        BatchItem.objects.order_by()
        .values("batch_id")
        .annotate(
            citation_checked=Count("id", filter=Q(citation_match__isnull=False)),
            citation_matched=Count("id", filter=Q(citation_match=True)),
            similarity_count=Count("id", filter=Q(answer_similarity__isnull=False)),
            similarity_mean=Avg("answer_similarity"),
            found_checked=Count("id", filter=Q(answer_found__isnull=False)),
            found=Count("id", filter=Q(answer_found=True)),
            judged=Count("id", filter=Q(judge_verdict__in=(JudgeVerdict.PASS, JudgeVerdict.FAIL))),
            judge_passed=Count("id", filter=Q(judge_verdict=JudgeVerdict.PASS)),
            judge_no_verdict=Count("id", filter=Q(judge_verdict=JudgeVerdict.ERROR)),
            # An expert's review, where it says pass or fail, is the row's final verdict.
            verdict_graded=Count("id", filter=_FINAL_PASS | _FINAL_FAIL),
            verdict_passed=Count("id", filter=_FINAL_PASS),
            verdict_ungraded=Count("id", filter=Q(verdict=Verdict.UNGRADED) & ~_DECISIVE_REVIEW),
            expert_reviewed=Count("id", filter=_DECISIVE_REVIEW),
            outcome_checked=Count("id", filter=_OUTCOME_GRADED),
            outcome_met=Count(
                "id",
                filter=_OUTCOME_GRADED
                & ~Q(verdict=Verdict.FAIL, verdict_reason=VerdictReason.OUTCOME),
            ),
            guard_true_blocks=Count(
                "id", filter=Q(expected_outcome=AnswerType.BLOCKED) & _WAS_BLOCKED
            ),
            guard_false_blocks=Count("id", filter=Q(expected_outcome=NOT_BLOCKED) & _WAS_BLOCKED),
            guard_missed_blocks=Count(
                "id", filter=Q(expected_outcome=AnswerType.BLOCKED, verdict__gt="") & ~_WAS_BLOCKED
            ),
            # > 1 only in a batch with repeats: their per-question counts take one query.
            max_repeat=Max("repeat"),
        )
    )


def grade_summaries(batch_ids: Iterable[int]) -> dict[int, GradeSummary]:
    """GradeSummary per batch id, in one query (batches without rows get EMPTY_SUMMARY)."""
    ids = list(batch_ids)
    if not ids:
        return {}
    rows = _summary_query().filter(batch_id__in=ids)
    summaries = dict.fromkeys(ids, EMPTY_SUMMARY)
    rows = list(rows)
    repeated_ids = [row["batch_id"] for row in rows if (row["max_repeat"] or 1) > 1]
    repeated = _repeat_counts(repeated_ids) if repeated_ids else {}
    for row in rows:
        batch_id = row.pop("batch_id")
        row.pop("max_repeat")
        mean = row.pop("similarity_mean")
        summaries[batch_id] = GradeSummary(
            **row,
            similarity_mean=round(mean, 4) if mean is not None else None,
            **repeated.get(batch_id, {}),
        )
    return summaries


def _repeat_counts(batch_ids: list[int]) -> dict[int, dict[str, int]]:
    """For the batches with repeats among `batch_ids`: their k, questions, and questions
    graded / passing at least once / passing every time (one query over the questions,
    grouped in the database; each question read by evaluation.repeats)."""
    per_question = (
        BatchItem.objects.filter(batch_id__in=batch_ids)
        .order_by()
        .values("batch_id", "question_index", "batch__repeats")
        .annotate(
            rows=Count("id"),
            passes=Count("id", filter=Q(verdict=Verdict.PASS)),
            fails=Count("id", filter=Q(verdict=Verdict.FAIL)),
        )
    )
    counts: dict[int, dict[str, int]] = {}
    for question in per_question:
        found = counts.setdefault(
            question["batch_id"],
            {
                "repeats": question["batch__repeats"],
                "questions": 0,
                "questions_graded": 0,
                "pass_at_k_count": 0,
                "pass_all_k_count": 0,
            },
        )
        passes, fails = question["passes"], question["fails"]
        verdicts = [Verdict.PASS] * passes + [Verdict.FAIL] * fails
        result = repeat_result(verdicts + [""] * (question["rows"] - passes - fails))
        found["questions"] += 1
        found["questions_graded"] += result.graded > 0
        found["pass_at_k_count"] += bool(result.pass_at_k)
        found["pass_all_k_count"] += bool(result.pass_all_k)
    return counts


def summary_text(summary: GradeSummary) -> str:
    """One line for the command line: each rate with its count of rows (English)."""
    parts = []
    if summary.verdict_graded:
        parts.append(
            f"pass rate {summary.pass_rate:.0%} ({summary.verdict_passed}/{summary.verdict_graded})"
        )
    if summary.questions_graded:
        k, graded = summary.repeats, summary.questions_graded
        parts.append(
            f"pass@{k} {summary.pass_at_k_rate:.0%} ({summary.pass_at_k_count}/{graded} "
            f"questions), pass^{k} {summary.pass_all_k_rate:.0%} "
            f"({summary.pass_all_k_count}/{graded})"
        )
    if summary.citation_checked:
        parts.append(
            f"citation match {summary.citation_match_rate:.0%} "
            f"({summary.citation_matched}/{summary.citation_checked})"
        )
    if summary.similarity_count:
        parts.append(
            f"mean similarity {summary.similarity_mean:.2f} ({summary.similarity_count} rows)"
        )
    if summary.found_checked:
        parts.append(
            f"answers found {summary.answer_found_rate:.0%} "
            f"({summary.found}/{summary.found_checked})"
        )
    if summary.judged:
        parts.append(
            f"judge pass {summary.judge_pass_rate:.0%} ({summary.judge_passed}/{summary.judged})"
        )
    return ", ".join(parts)


def grade_summary(batch: Batch) -> GradeSummary:
    return grade_summaries([batch.pk])[batch.pk]
