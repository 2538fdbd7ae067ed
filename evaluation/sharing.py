"""Reviewers: an owner shares a batch, or a whole question set (every run of it, later
ones too), with another user by username (DESIGN "Evaluation", issue 24).

A reviewer may read, export and review what is shared with them, and nothing else:
start, cancel, delete, run again, share and the rest answer 404, as for a stranger.
Access flows through two rules this module registers when the app starts
(`register_rules`): batches.hooks (which batches a user may read) and chats.access (the
chats of those batches), so neither `batches` nor `chats` imports `evaluation`.
Staff keep what they had: they read everything; only owners and superusers act.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from batches.models import Batch, BatchItem
from evaluation.models import QuestionSet, Share


class ShareError(ValueError):
    """A share that cannot be made (unknown user, oneself); the message is for people."""


def shared_batches(user) -> Q:
    """Batches shared with `user`: directly, or as a run of a set shared with them."""
    shares = Share.objects.filter(user_id=user.pk)
    direct = shares.filter(batch_id=OuterRef("pk"))
    through_set = shares.filter(question_set__runs__batch_id=OuterRef("pk"))
    return Q(Exists(direct)) | Q(Exists(through_set))


def shared_chats(user) -> Q:
    """Chats of the batches shared with `user`."""
    batches = Batch.objects.filter(shared_batches(user)).values("pk")
    return Q(Exists(BatchItem.objects.filter(chat_id=OuterRef("pk"), batch_id__in=batches)))


def register_rules() -> None:
    from batches.hooks import register_reader_rule
    from chats.access import register_reader_rule as register_chat_rule

    register_reader_rule("evaluation.shares", shared_batches)
    register_chat_rule("evaluation.shares", shared_chats)


def is_reviewer(user, batch: Batch) -> bool:
    """Whether the batch is shared with `user` (one query)."""
    return Batch.objects.filter(pk=batch.pk).filter(shared_batches(user)).exists()


def may_review(user, batch: Batch) -> bool:
    """Owner, superuser or reviewer; other staff read but do not review (as they do not
    act) someone else's batch."""
    from batches.selectors import may_act_on  # not at start: it loads the chat pipeline

    return may_act_on(user, batch) or is_reviewer(user, batch)


def review_only(user, batch: Batch) -> bool:
    """The user reads `batch` as a reviewer only (pages hide the owner's actions)."""
    from batches.selectors import may_act_on

    return not user.is_staff and not may_act_on(user, batch)


def sets_for(user, *, shared: bool = True) -> QuerySet[QuestionSet]:
    """The question sets `user` may see: their own and (with `shared`) those shared with
    them, or whose runs are; staff: all."""
    queryset = QuestionSet.objects.select_related("owner")
    if user.is_staff:
        return queryset
    condition = Q(owner_id=user.pk)
    if shared:
        condition |= Q(Exists(Share.objects.filter(user_id=user.pk, question_set=OuterRef("pk"))))
    return queryset.filter(condition)


def may_share_set(user, question_set: QuestionSet) -> bool:
    return user.is_superuser or question_set.owner_id == user.pk


def _reviewer(username: str, *, owner_id: int | None):
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username.strip()}, is_active=True).first()
    if user is None:
        raise ShareError(_("No user is called “%(name)s”.") % {"name": username})
    if user.pk == owner_id:
        raise ShareError(_("The owner already has every right on it."))
    return user


@transaction.atomic
def share_with(
    *,
    username: str,
    shared_by,
    batch: Batch | None = None,
    question_set: QuestionSet | None = None,
    role: str = Share.Role.REVIEWER,
) -> Share:
    """Share `batch` or `question_set` with the user called `username` (idempotent: a
    second share answers the first). The caller has checked that `shared_by` may."""
    if (batch is None) == (question_set is None):
        raise ValueError("Share a batch or a question set.")
    if role not in Share.Role.values:
        raise ShareError(_("Unknown role “%(role)s”.") % {"role": role})
    owner_id = batch.uploader_id if batch is not None else question_set.owner_id
    user = _reviewer(username, owner_id=owner_id)
    target = {"batch": batch} if batch is not None else {"question_set": question_set}
    try:
        with transaction.atomic():
            share, _created = Share.objects.get_or_create(
                user=user, **target, defaults={"role": role, "shared_by": shared_by}
            )
    except IntegrityError:  # two shares at once: the other one won
        share = Share.objects.get(user=user, **target)
    return share


def unshare(
    *, username: str, batch: Batch | None = None, question_set: QuestionSet | None = None
) -> int:
    """Remove the user's share of `batch` or `question_set`; the number removed (0 or 1)."""
    User = get_user_model()
    target = {"batch": batch} if batch is not None else {"question_set": question_set}
    deleted, _rows = Share.objects.filter(
        **{f"user__{User.USERNAME_FIELD}": username.strip()}, **target
    ).delete()
    return deleted


def shares_of(*, batch: Batch) -> list[Share]:
    """Who reviews `batch`: its own shares and its set's (one query)."""
    return list(
        Share.objects.filter(Q(batch=batch) | Q(question_set__runs__batch=batch))
        .select_related("user", "question_set")
        .order_by("created_at", "pk")
    )
