"""The metric writer: an eval's metrics are gathered and written off the training thread at
most every WRITE_EVERY_S, all of them by `flush`, in batches MLflow takes; a failed write
raises at the next eval. On a real MLflow SQLite store."""

from __future__ import annotations

import time

import pytest
from mlflow.entities import Metric

from orchestrator.tracking import Tracker
from orchestrator.tracking.writer import MAX_BATCH, WRITE_EVERY_S, MetricWriter


def _metrics(step: int, n: int = 1) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(f"m{i}", float(step + i), now, step) for i in range(n)]


def _steps(tracker: Tracker, run_id: str, key: str = "m0") -> list[int]:
    return sorted(step for step, _, _ in tracker.metric_history(run_id, key))


def test_evals_are_gathered_and_all_written_by_flush(store):
    tracker = Tracker(store, "writer")
    run_id = tracker.create_run("r")
    writer = MetricWriter(tracker.client.log_batch)
    writer.add(run_id, _metrics(1))  # the first write goes out at once
    for step in (2, 3, 4):
        writer.add(run_id, _metrics(step))  # within WRITE_EVERY_S: gathered, not written
    deadline = time.monotonic() + 30
    while _steps(tracker, run_id) != [1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _steps(tracker, run_id) == [1]
    assert WRITE_EVERY_S >= 1.0  # the test's three adds came well inside the window
    writer.flush(run_id)
    assert _steps(tracker, run_id) == [1, 2, 3, 4]


def test_more_than_one_batch_is_split_and_kept_whole(store):
    tracker = Tracker(store, "writer")
    run_id = tracker.create_run("r")
    writer = MetricWriter(tracker.client.log_batch)
    n = MAX_BATCH + 250  # more metrics than MLflow takes in one log_batch
    writer.add(run_id, _metrics(7, n))
    writer.flush(run_id)
    stored = tracker.get_run(run_id).metrics
    assert len(stored) == n and stored[f"m{n - 1}"] == 7.0 + n - 1


def test_a_failed_write_raises_at_the_next_eval_and_at_flush(store):
    tracker = Tracker(store, "writer")
    writer = MetricWriter(tracker.client.log_batch)
    missing = "0" * 32  # no such run: the store refuses the write on the writer thread
    writer.add(missing, _metrics(1))
    deadline = time.monotonic() + 30
    with pytest.raises(Exception, match="(?i)run"):
        while time.monotonic() < deadline:
            writer.add(missing, _metrics(2))  # raises once the first write has failed
            time.sleep(0.05)
    # what was queued for that run is dropped: flush has nothing left to fail on
    writer.flush(missing)
