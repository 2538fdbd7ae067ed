"""The review endpoints of the HTTP API, under `/api/batch/` (batchchat.api mounts this
router there): share with reviewers, review one row, upload a reviewed spreadsheet.

Access: sharing is the owner's (or a superuser's; other staff 403; a reviewer or a
stranger 404); reviewing is the owner's, a superuser's or a reviewer's (other staff 403).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router
from pydantic import Field, model_validator

from batchchat.api_base import ApiError, CamelSchema, error_docs, multipart_file
from batches.api import COMMON_ERRORS, _batch_for
from batches.models import Batch
from batches.selectors import STAFF_READ_ONLY
from evaluation import sharing
from evaluation.agreement import review_summaries
from evaluation.models import QuestionSet, Share
from evaluation.review import ReviewError, save_review
from evaluation.review_files import ReviewFileError, apply_reviews, preview_reviews

router = Router(tags=["reviews"], by_alias=True)
ID = Field(default=None, ge=1, le=2**63 - 1)


class ShareIn(CamelSchema):
    batch_id: int | None = ID
    question_set_id: int | None = ID
    # Checked after the batch or set is found, so that someone else's answers 404 whatever
    # the body holds.
    username: str = Field(default="", max_length=150)
    role: str = Field(default=Share.Role.REVIEWER, description="reviewer (the only role)")

    @model_validator(mode="after")
    def one_target(self):
        if (self.batch_id is None) == (self.question_set_id is None):
            raise ValueError("Give batchId or questionSetId (one of them).")
        return self


class ShareOut(CamelSchema):
    username: str
    role: str
    batch_id: int | None
    question_set_id: int | None
    created_at: str

    @classmethod
    def of(cls, share: Share) -> ShareOut:
        return cls(
            username=share.user.get_username(),
            role=share.role,
            batch_id=share.batch_id,
            question_set_id=share.question_set_id,
            created_at=share.created_at.isoformat(),
        )


class SharesOut(CamelSchema):
    shares: list[ShareOut]


class UnshareOut(CamelSchema):
    removed: int


class SharesQuery(CamelSchema):
    batch_id: int | None = ID
    question_set_id: int | None = ID


class ReviewIn(CamelSchema):
    batch_id: int = Field(ge=1, le=2**63 - 1)
    row: int | None = Field(
        default=None, ge=1, description="The row number (1-based, as in the export's `row`)"
    )
    verdict: str = Field(
        default="", description="correct, partly_correct, incorrect, cannot_tell ('' clears)"
    )
    notes: str = Field(default="", max_length=10_000)


class ReviewOut(CamelSchema):
    row: int
    review_verdict: str
    review_notes: str
    reviewed_by: str
    reviewed_at: str | None


class ReviewsQuery(CamelSchema):
    batch_id: int = Field(ge=1, le=2**63 - 1)
    dry_run: bool = Field(default=False, description="Answer the preview, apply nothing")
    overwrite: bool = Field(
        default=False,
        description="Also apply conflicts (rows reviewed in BatchChat after the export)",
    )


class ReviewsOut(CamelSchema):
    dry_run: bool
    new: int
    changed: int
    unchanged: int
    conflicts: int
    applied: int
    rows: list[dict] = Field(
        description="Each row that is new, changed or a conflict: row (spreadsheet row), "
        "batchRow, kind, verdict, notes, currentVerdict, currentNotes"
    )


def _set_for(request: HttpRequest, set_id: int, *, share: bool) -> QuestionSet:
    question_set = sharing.sets_for(request.auth).filter(pk=set_id).first()
    if question_set is None or share and not sharing.may_share_set(request.auth, question_set):
        if question_set is not None and request.auth.is_staff:
            raise ApiError(403, STAFF_READ_ONLY, code="forbidden")
        raise ApiError(404, f"No question set with questionSetId {set_id}.")
    return question_set


def _target(request: HttpRequest, batch_id: int | None, set_id: int | None) -> dict:
    if batch_id is not None:
        return {"batch": _batch_for(request, batch_id, act=True)}
    if set_id is None:
        raise ApiError(400, "Give batchId or questionSetId.", code="invalid_fields")
    return {"question_set": _set_for(request, set_id, share=True)}


def _require_username(username: str) -> None:
    if not username.strip():
        message = "Give the reviewer's username."
        raise ApiError(422, message, code="invalid_fields", fields={"username": [message]})


@router.post(
    "/share",
    response={200: SharesOut, **error_docs(*COMMON_ERRORS, 422)},
    summary="Share a batch or a whole question set with a user, as reviewer",
)
def share(request: HttpRequest, payload: ShareIn):
    """The reviewer may read, export and review it (a set: every run of it), nothing
    else. Sharing again is harmless. Answers every share of the batch (or the set)."""
    target = _target(request, payload.batch_id, payload.question_set_id)
    _require_username(payload.username)
    try:
        sharing.share_with(
            username=payload.username, shared_by=request.auth, role=payload.role, **target
        )
    except sharing.ShareError as error:
        raise ApiError(
            422, str(error), code="invalid_fields", fields={"username": [str(error)]}
        ) from None
    return _shares_out(target)


@router.post(
    "/unshare",
    response={200: UnshareOut, **error_docs(*COMMON_ERRORS)},
    summary="Stop sharing a batch or a question set with a user",
)
def unshare(request: HttpRequest, payload: ShareIn):
    target = _target(request, payload.batch_id, payload.question_set_id)
    _require_username(payload.username)
    return UnshareOut(removed=sharing.unshare(username=payload.username, **target))


@router.get(
    "/shares",
    response={200: SharesOut, **error_docs(*COMMON_ERRORS)},
    summary="Who reviews a batch (its own shares and its set's) or a question set",
)
def shares(request: HttpRequest, query: Query[SharesQuery]):
    return _shares_out(_target(request, query.batch_id, query.question_set_id))


def _shares_out(target: dict) -> SharesOut:
    if "batch" in target:
        found = sharing.shares_of(batch=target["batch"])
    else:
        found = list(target["question_set"].shares.select_related("user"))
    return SharesOut(shares=[ShareOut.of(item) for item in found])


def _reviewable(request: HttpRequest, batch_id: int) -> Batch:
    batch = _batch_for(request, batch_id)
    if not sharing.may_review(request.auth, batch):
        raise ApiError(403, STAFF_READ_ONLY, code="forbidden")
    return batch


@router.post(
    "/review",
    response={200: ReviewOut, **error_docs(*COMMON_ERRORS, 422)},
    summary="Review one row: a verdict and notes",
)
def review(request: HttpRequest, payload: ReviewIn):
    batch = _reviewable(request, payload.batch_id)
    if payload.row is None:
        message = "Give the row number (`row`, 1-based)."
        raise ApiError(422, message, code="invalid_fields", fields={"row": [message]})
    item = batch.items.select_related("interaction").filter(position=payload.row - 1).first()
    if item is None:
        raise ApiError(404, f"No row {payload.row} in batch {batch.pk}.")
    try:
        interaction = save_review(
            item=item, verdict=payload.verdict, notes=payload.notes, user=request.auth
        )
    except ReviewError as error:
        raise ApiError(
            422, str(error), code="invalid_fields", fields={"verdict": [str(error)]}
        ) from None
    return ReviewOut(
        row=payload.row,
        review_verdict=interaction.review_verdict,
        review_notes=interaction.review_notes,
        reviewed_by=interaction.reviewed_by.get_username() if interaction.reviewed_by else "",
        reviewed_at=interaction.reviewed_at.isoformat() if interaction.reviewed_at else None,
    )


@router.post(
    "/reviews",
    response={200: ReviewsOut, **error_docs(*COMMON_ERRORS, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                }
            },
        }
    },
    summary="Upload a reviewed results file (XLSX or CSV): apply, or preview with dryRun",
)
def reviews(request: HttpRequest, query: Query[ReviewsQuery]):
    """Rows are matched by the export's hidden `row_key`. A key or a verdict that is not
    right answers 422 naming every bad row and cell (`error.rows`), and nothing is
    applied. Conflicts (rows reviewed in BatchChat after the export) are left as they
    are unless `overwrite=true`."""
    batch = _reviewable(request, query.batch_id)
    upload = multipart_file(request, what="the reviewed XLSX or CSV file")
    if upload.size > settings.MAX_UPLOAD_BYTES:
        raise ApiError(413, f"The file is over {settings.MAX_UPLOAD_BYTES} bytes.")
    data = upload.read()
    try:
        if query.dry_run:
            result = preview_reviews(batch=batch, data=data, filename=upload.name or "")
        else:
            result = apply_reviews(
                batch=batch,
                data=data,
                filename=upload.name or "",
                user=request.auth,
                overwrite=query.overwrite,
            )
    except ReviewFileError as error:
        raise ApiError(
            422,
            str(error),
            code="invalid_file",
            rows=[problem.as_dict() for problem in error.problems],
        ) from None
    counts = result.counts()
    return ReviewsOut(
        dry_run=query.dry_run,
        new=counts["new"],
        changed=counts["changed"],
        unchanged=counts["unchanged"],
        conflicts=counts["conflict"],
        applied=result.applied,
        rows=[
            {
                "row": change.row,
                "batchRow": change.item.position + 1,
                "kind": change.kind,
                "verdict": change.verdict,
                "notes": change.notes,
                "currentVerdict": change.current_verdict,
                "currentNotes": change.current_notes,
            }
            for change in result.changes
            if change.kind != "unchanged"
        ],
    )


class AgreementQuery(CamelSchema):
    batch_id: int = Field(ge=1, le=2**63 - 1)


@router.get(
    "/agreement",
    response={200: dict, **error_docs(*COMMON_ERRORS)},
    summary="Reviews of a batch and the agreement of the verdicts and the judge with them",
)
def agreement(request: HttpRequest, query: Query[AgreementQuery]):
    batch = _batch_for(request, query.batch_id)
    return review_summaries([batch.pk])[batch.pk].as_dict()
