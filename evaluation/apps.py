from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"

    def ready(self) -> None:
        # batches never imports evaluation: its writer, pages and API reach the graders
        # through the registry in batches.hooks.
        from batches.hooks import Graders, register_graders
        from batches.models import Batch
        from batches.signals import batch_created
        from evaluation import grading, regrade, sharing, views

        # Every new batch is a run of a question set (evaluation.sets.add_run).
        batch_created.connect(_add_run, sender=Batch, dispatch_uid="evaluation.sets.add_run")

        # Reviewers read the batches (and their chats) shared with them.
        sharing.register_rules()

        register_graders(
            Graders(
                grade_items=grading.grade_items,
                wants_judge=grading.wants_judge,
                judge=grading.judge,
                summaries=grading.grade_summaries,
                summary_text=grading.summary_text,
                detail_context=views._evaluation_context,
                detail_oob=views._append_evaluation_oob,
                background_work=regrade.advance_next,
                review_summary=_review_summary,
            )
        )


def _add_run(sender, *, batch, **kwargs) -> None:
    from evaluation import sets

    sets.add_run(batch=batch)


def _review_summary(batch_id: int) -> dict:
    from evaluation.agreement import review_summaries

    return review_summaries([batch_id])[batch_id].as_dict()
