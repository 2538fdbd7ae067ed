from django.apps import AppConfig


class BatchesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "batches"

    def ready(self) -> None:
        # checks registers the system checks on import.
        from batches import checks, runners  # noqa: F401

        # The Celery runner takes batches the lifecycle queues, when a broker is set. Its
        # tasks (and Celery) are imported at the first batch it schedules, not at start.
        runners.register("celery", runners.celery_schedule)
