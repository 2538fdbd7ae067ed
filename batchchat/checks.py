"""Settings that are unsafe in production stop the app at start with a clear message."""

from __future__ import annotations

import ipaddress
import os

from django.conf import settings
from django.core.checks import Error, Tags, register

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1", "testserver"}


def _is_public_host(host: str) -> bool:
    host = host.strip().lower()
    if host in LOCAL_HOSTS or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # a name (or "*") that others can reach


def bind_host(bind: str) -> str:
    """The host part of a `BIND` address as runserver reads it: `0.0.0.0:8000`,
    `[::]:8000`, `0:8000` (runserver's 0.0.0.0), `8000` (a port alone: 127.0.0.1)."""
    bind = bind.strip()
    if not bind or bind.isdigit():
        return "127.0.0.1"
    if bind.startswith("["):
        return bind[1 : bind.find("]")] if "]" in bind else bind
    host = bind.rpartition(":")[0] if bind.count(":") == 1 else bind
    return "0.0.0.0" if host in ("", "0") else host


def _is_public_bind(bind: str) -> bool:
    """Whether a server bound there is reachable from other machines: any address but a
    loopback one (0.0.0.0 and :: listen on every interface)."""
    host = bind_host(bind).lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name that resolves elsewhere


@register(Tags.security)
def check_production_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    bind = os.environ.get("BIND", "")
    if settings.DEBUG and bind and _is_public_bind(bind):
        errors.append(
            Error(
                f"DJANGO_DEBUG is on while BIND={bind} serves other machines: debug pages "
                "would show settings and code to anyone who can reach it.",
                hint="Set DJANGO_DEBUG=0 (with DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS), "
                "or bind to 127.0.0.1.",
                id="batchchat.E003",
            )
        )
    public = [h for h in settings.ALLOWED_HOSTS if _is_public_host(h)]
    if settings.DEBUG and public:
        errors.append(
            Error(
                f"DJANGO_DEBUG is on while DJANGO_ALLOWED_HOSTS names public hosts "
                f"({', '.join(public)}): debug pages would show settings and code to "
                f"anyone.",
                hint="Set DJANGO_DEBUG=0 for a public deployment.",
                id="batchchat.E001",
            )
        )
    if not settings.DEBUG and settings.SECRET_KEY == settings.INSECURE_DEV_SECRET_KEY:
        errors.append(
            Error(
                "DJANGO_SECRET_KEY is not set: the development key is public and must "
                "not sign production sessions.",
                hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(50))"',
                id="batchchat.E002",
            )
        )
    return errors


def raise_on_errors() -> None:
    """Run the checks outside manage.py (WSGI/ASGI start) and refuse to start on error."""
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    errors = [e for e in checks.run_checks(tags=[Tags.security]) if e.is_serious()]
    if errors:
        raise ImproperlyConfigured("\n".join(f"{e.id}: {e.msg} {e.hint or ''}" for e in errors))
