"""BatchChat.

The Celery app (`celery_app`, batchchat.celery) is imported when first asked for, not
here: `celery -A batchchat` finds batchchat.celery itself, the lifecycle's Celery
scheduler imports it before enqueueing (batches.runners), and a command that never
touches Celery does not pay ~0.1 s of imports at start.
"""

from __future__ import annotations

__all__ = ("celery_app",)


def __getattr__(name: str):
    if name == "celery_app":
        from batchchat.celery import app

        return app
    raise AttributeError(f"module 'batchchat' has no attribute {name!r}")
