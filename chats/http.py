"""HTTP plumbing shared by the AI providers (`chats.providers`) and the search providers
(`chats.search`), so that neither package imports the other's internals: the number of
client shards, the one TLS context of the process, and Retry-After parsing."""

from __future__ import annotations

import email.utils
import functools
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

# HTTP clients per provider and settings (see chats.aio.round_robin). Each SDK client keeps
# up to 1,000 connections (the SDKs' default limits), far above any concurrency asked for.
CLIENT_SHARDS = 16

# The wall clock an HTTP-date Retry-After is measured against (tests freeze it).
clock: Callable[[], float] = time.time


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: building one (loading the CA
    certificates) costs tens of milliseconds, once per client otherwise. The same
    certificates as httpx's default: SSL_CERT_FILE or SSL_CERT_DIR when set, else
    certifi's bundle (httpx itself is not imported: the SDKs run on aiohttp)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - clock())
