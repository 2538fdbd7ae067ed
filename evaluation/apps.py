from importlib import import_module

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"

    def ready(self) -> None:
        # batches never imports evaluation: its writer, pages and API reach the graders
        # through the registry in batches.hooks.
        from batches.hooks import Graders, RunSets, register_graders, register_run_sets
        from batches.models import Batch
        from batches.signals import batch_created
        from evaluation import sharing

        # Every new batch is a run of a question set (evaluation.sets.add_run).
        batch_created.connect(_add_run, sender=Batch, dispatch_uid="evaluation.sets.add_run")

        # Reviewers read the batches (and their chats) shared with them.
        sharing.register_rules()

        register_graders(
            Graders(
                grade_items=_lazy("grading", "grade_items"),
                wants_judge=_lazy("grading", "wants_judge"),
                judge=_lazy("grading", "judge"),
                judge_request=_lazy("grading", "judge_request"),
                judge_reply=_lazy("grading", "judge_reply"),
                summaries=_lazy("grading", "grade_summaries"),
                summary_text=_lazy("grading", "summary_text"),
                detail_context=_lazy("views", "_evaluation_context"),
                detail_oob=_lazy("views", "_append_evaluation_oob"),
                background_work=_lazy("regrade", "advance_next"),
                judge_rows=_lazy("grading", "judge_rows"),
                question_set_ids=_lazy("sets", "question_set_ids"),
                question_results=_lazy("repeats", "question_results"),
                review_summary=_review_summary,
            )
        )
        register_run_sets(
            RunSets(
                labels=_lazy("selectors", "set_labels"),
                batch_ids=_lazy("selectors", "set_batch_ids"),
            )
        )


def _lazy(module: str, name: str):
    """evaluation.<module>.<name>, imported at its first call: the graders pull in the
    chat pipeline and rapidfuzz, the page hooks django-ninja's schemas, none of which a
    management command such as `run_batch --help` needs at start."""

    def call(*args, **kwargs):
        return getattr(import_module(f"evaluation.{module}"), name)(*args, **kwargs)

    call.__name__ = name
    return call


def _add_run(sender, *, batch, **kwargs) -> None:
    from evaluation import sets

    sets.add_run(batch=batch)


def _review_summary(batch_id: int) -> dict:
    from evaluation.agreement import review_summaries

    return review_summaries([batch_id])[batch_id].as_dict()
