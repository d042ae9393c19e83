"""Metric writes off the training thread: gathered per run and written at most every few
seconds on one writer thread, so training waits neither on the store nor on its Python.

MLflow's own async logging added about a second to every run's end while its queue shut
down; writing every eval as it came cost a smoke run 5-10% of its time (each SQLite batch
is ~30 ms of SQLAlchemy holding the GIL beside a training loop that steps every ~10 ms).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

WRITE_EVERY_S = 5.0  # the MLflow UI's live curves lag by at most this much
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch


class MetricWriter:
    def __init__(self, log_batch):
        self.log_batch = log_batch  # MlflowClient.log_batch
        self._pool: ThreadPoolExecutor | None = None
        self._buffer: dict[str, list[Any]] = {}
        self._last: dict[str, float] = {}
        self._pending: dict[str, list[Future]] = {}

    def add(self, run_id: str, metrics: list[Any]) -> None:
        """Queue a run's metrics; written now if its last write is WRITE_EVERY_S old. A
        write that failed (a locked or full store) raises here, at the next eval, rather
        than hours later at the run's end."""
        pending = self._pending.setdefault(run_id, [])
        for done in [f for f in pending if f.done()]:
            pending.remove(done)
            if done.exception() is not None:
                self.drop(run_id)
                done.result()
        self._buffer.setdefault(run_id, []).extend(metrics)
        if time.monotonic() - self._last.get(run_id, -WRITE_EVERY_S) >= WRITE_EVERY_S:
            self._submit(run_id)

    def _submit(self, run_id: str) -> None:
        batch = self._buffer.pop(run_id, [])
        self._last[run_id] = time.monotonic()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-tracking")
        for i in range(0, len(batch), MAX_BATCH):
            future = self._pool.submit(self.log_batch, run_id, metrics=batch[i : i + MAX_BATCH])
            self._pending.setdefault(run_id, []).append(future)

    def drop(self, run_id: str) -> None:
        """Cancel a run's queued writes: each would wait out the store's lock timeout (20 s
        for SQLite) in turn before failing too."""
        self._buffer.pop(run_id, None)
        for future in self._pending.pop(run_id, []):
            future.cancel()

    def flush(self, run_id: str) -> None:
        """Write what is gathered and wait for all of the run's writes; a failure raises."""
        if self._buffer.get(run_id):
            self._submit(run_id)
        self._last.pop(run_id, None)
        futures = self._pending.pop(run_id, [])
        for i, future in enumerate(futures):
            if future.cancelled():
                continue
            try:
                future.result()
            except BaseException:
                for later in futures[i + 1 :]:
                    later.cancel()
                raise
