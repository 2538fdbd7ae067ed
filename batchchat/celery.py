"""The Celery app, as the Celery docs lay it out for Django.

Used only when CELERY_BROKER_URL is set; otherwise batches run on the inline runner.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")

app = Celery("batchchat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
