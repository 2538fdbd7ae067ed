"""Imported once by the multiprocessing fork server of the engine processes
(batches.procs.context): Django set up and the enabled providers' SDKs imported there, so
that every engine process forked from it starts with them, instead of paying about two
seconds of CPU each. Safe to fork after: django.setup() opens no database connection and
starts no thread, and the provider loop (chats.aio) starts afresh in a forked child."""

from __future__ import annotations

import django

django.setup()

from chats.services import preload_providers  # noqa: E402

preload_providers()
