"""The batch engine: a batch processed in resumable slices, many provider calls in flight.

State lives on rows: an item is claimed with a conditional UPDATE that sets a lease
(owner + expiry), and every result is recorded with a check that the lease is still ours.
So any number of callers (threads, processes, Celery workers, machines) can work on one
batch: each row completes once, and a row whose worker died is claimed again when its
lease expires.

One slice, two threads:
- the slice itself is a coroutine on the process's provider loop (`chats.aio`): it keeps
  `concurrency` rows in flight through the chat pipeline's `answer` step, with the SDKs'
  async clients, without a thread per call;
- every database query of the slice runs, one at a time, in the thread that called
  `process_for_duration` (its own Django connection: a slice holds ONE connection). That
  thread is otherwise idle while the slice runs.

The parts, one module each (and the thread each runs on):
- `process`  process_for_duration and SliceResult: the entry point (caller thread);
- `slices`   Slice: the feeder that ties the parts, one task per row (loop);
- `claims`   Claims: candidates, the claim, release, lease renewal (loop; queries in the
             caller thread);
- `writer`   Writer: results recorded in groups, rows updated, later turns failed (loop;
             each group one transaction in the caller thread);
- `status`   StatusFence: the background status reads no provider call starts without,
             and outlast_status_reads for cancel_batch (loop; reads in the caller thread);
- `ticker`   Ticker: throttle published on the batch, progress reported (loop);
- `caller`   CallerThread: how the loop hands database work to the caller thread.
"""

from __future__ import annotations

from batches.engine.process import SliceResult, process_for_duration
from batches.engine.status import outlast_status_reads

__all__ = [
    "SliceResult",
    "outlast_status_reads",
    "process_for_duration",
]
