"""Group commit of SQLite answers: the answers that arrive while one transaction is being
synced are written together in the next one, so one fsync (synchronous=FULL) acknowledges
several answers instead of one each.

Each answer is a job. The first thread to find no leader for its database becomes the
leader: it takes every job queued so far, writes them in one transaction (a repeated
answer fails on its INSERT, which SQLite undoes alone), commits, and only then marks the
jobs done and wakes their threads. A reply is sent after its job is done, so an
acknowledged answer is committed (and, with synchronous=FULL, synced) exactly as when
each answer committed alone. A failed commit fails every job of its batch: none of them
is acknowledged.

Only the answer routes' own connections are used (fastsql's borrowed connection, with no
transaction open); the caller falls back to one transaction per answer elsewhere.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

MAX_BATCH = 64


class Job:
    """One answer waiting to be written: `write(cursor)` inserts it (raising the driver's
    IntegrityError for a repeat) and returns what the caller needs."""

    __slots__ = ("write", "result", "error", "done")

    def __init__(self, write: Callable):
        self.write = write
        self.result = None
        self.error: BaseException | None = None
        self.done = False


class _Queue:
    __slots__ = ("pending", "leading")

    def __init__(self):
        self.pending: list[Job] = []
        self.leading = False


_COND = threading.Condition()
_QUEUES: dict[str, _Queue] = {}


def submit(key: str, job: Job, run_batch: Callable[[list[Job]], None]):
    """Queue `job` for the database `key` and return its result once its batch has
    committed (raising its error otherwise). `run_batch(jobs)` writes and commits a
    batch on the calling thread's connection, setting each job's result or error."""
    with _COND:
        q = _QUEUES.get(key)
        if q is None:
            q = _QUEUES[key] = _Queue()
        q.pending.append(job)
    while True:
        with _COND:
            while not job.done and q.leading:
                _COND.wait()
            if job.done:
                return _outcome(job)
            q.leading = True
            batch, q.pending = q.pending[:MAX_BATCH], q.pending[MAX_BATCH:]
        try:
            run_batch(batch)
        except BaseException as e:  # nothing of this batch is committed
            for j in batch:
                if j.error is None:
                    j.error = e
        finally:
            with _COND:
                for j in batch:
                    j.done = True
                q.leading = False
                _COND.notify_all()  # the waiting jobs: done, or one of them leads next
        # A long queue may have left this thread's own job for the next batch.


def _outcome(job: Job):
    if job.error is not None:
        raise job.error
    return job.result
