"""The Celery app, as the Celery docs lay it out for Django.

Used only when CELERY_BROKER_URL is set; otherwise batches run on the inline runner.
"""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")

app = Celery("batchchat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def preload_providers(**_kwargs: object) -> None:
    """In the worker's parent, before it forks its pool: the provider SDKs are imported
    once, and every child starts its first slice with them loaded."""
    from chats.services import preload_providers

    preload_providers()


@signals.worker_process_init.connect
def warm_up_providers(**_kwargs: object) -> None:
    """In each pool child, once forked: the SDK clients are built on its provider loop
    before its first task, instead of by the first rows of its first slice."""
    from batchchat.collector import freeze_start_up
    from chats.services import warm_up_providers

    warm_up_providers()
    freeze_start_up()
