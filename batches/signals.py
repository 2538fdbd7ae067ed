"""Signals batches sends for the apps above it (they connect in their AppConfig.ready;
batches never imports them).

- `batch_created(sender=Batch, batch=...)`: sent inside the transaction that created the
  batch and its rows (an upload, a draft, run again), once the rows are in. A receiver
  that raises rolls the batch back: the evaluation app makes the batch a run of its
  question set here, so no batch is ever without one.
"""

from __future__ import annotations

from django.dispatch import Signal

batch_created = Signal()
