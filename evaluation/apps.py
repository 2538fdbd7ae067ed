from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"

    def ready(self) -> None:
        # batches never imports evaluation: its writer, pages and API reach the graders
        # through the registry in batches.hooks.
        from batches.hooks import Graders, register_graders
        from evaluation import grading, views

        register_graders(
            Graders(
                grade_items=grading.grade_items,
                wants_judge=grading.wants_judge,
                judge=grading.judge,
                summaries=grading.grade_summaries,
                summary_text=grading.summary_text,
                detail_context=views._evaluation_context,
                detail_oob=views._append_evaluation_oob,
            )
        )
