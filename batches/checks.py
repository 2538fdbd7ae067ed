"""Worker settings that would make every worker look dead, or never stop, fail at start."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register("batches")
def check_worker_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    if settings.WORKER_HEARTBEAT_TIMEOUT <= settings.WORKER_HEARTBEAT_SECONDS:
        errors.append(
            Error(
                f"WORKER_HEARTBEAT_TIMEOUT ({settings.WORKER_HEARTBEAT_TIMEOUT:g} s) must be "
                f"longer than WORKER_HEARTBEAT_SECONDS ({settings.WORKER_HEARTBEAT_SECONDS:g} "
                "s): every worker would look dead between two heartbeats.",
                hint="Leave WORKER_HEARTBEAT_TIMEOUT unset (3 heartbeats) or raise it.",
                id="batches.E001",
            )
        )
    for name in ("WORKER_SLICE_SECONDS", "WORKER_POLL_SECONDS", "WORKER_HEARTBEAT_SECONDS"):
        if getattr(settings, name) <= 0:
            errors.append(Error(f"{name} must be more than 0 seconds.", id="batches.E002"))
    return errors
