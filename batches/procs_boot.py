"""Imported first by the multiprocessing fork server of the engine processes
(batches.procs.context), before the module of the provider they will use: Django is set
up there once, and every engine process forked from it starts with Django and the SDK
loaded, instead of paying a second or more of CPU each. Safe to fork after:
django.setup() opens no database connection and starts no thread, and the provider loop
(chats.aio) starts afresh in a forked child."""

from __future__ import annotations

import django

django.setup()
