from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")

application = get_asgi_application()

from batchchat.checks import raise_on_errors  # noqa: E402

raise_on_errors()
