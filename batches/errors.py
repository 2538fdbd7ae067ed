"""Errors of the batch services, shared by the engine, the pages and the API."""

from __future__ import annotations


class BatchStateError(Exception):
    """The batch is in a state that does not allow this action (HTTP 409)."""
