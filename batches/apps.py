from django.apps import AppConfig


class BatchesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "batches"

    def ready(self) -> None:
        from batches import checks  # noqa: F401 (registers the system checks)
