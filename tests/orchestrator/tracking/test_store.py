"""The MLflow store adapter when the store does not answer: another process locks mlflow.db
(a real SQLite lock; a real `sweep baseline` process mid-run)."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from clitools import sweep_process, wait_for_running

from orchestrator import tracking as T
from orchestrator.tracking import RunState

LONG = ["--set", "max_steps=5000", "--set", "eval_every=5"]


def test_a_store_locked_mid_run_is_one_line_exit_1_and_the_run_is_not_left_running(
    store, corpus_path, tmp_path
):
    tracker = T.Tracker(store, "char-gpt")
    args = ["baseline", "--profile", "smoke", "--data", str(corpus_path), "--tracking-uri", store]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = sweep_process([*args, *LONG], tmp_path, env)
    run = wait_for_running(tracker, proc, ("baseline",))
    db = T.sqlite_path(store)
    lock = sqlite3.connect(db, timeout=5)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the database for 30 s: longer
    try:  # than a metric write (every 5 s) waits for it (20 s): one fails mid-run
        time.sleep(30)
    finally:
        lock.rollback()
        lock.close()
    out, _ = proc.communicate(timeout=300)  # it stops at its next eval, not at step 5000
    assert proc.returncode == 1, out
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and str(db) in errors[0] and "locked" in errors[0], out
    assert "Traceback" not in out
    # the store answered again: the run was ended FAILED with the reason, its metrics kept
    after = tracker.get_run(run.run_id)
    assert after.state is RunState.FAILED, after
    assert "locked" in after.tags[T.TAG_REASON], after.tags
    assert [s for s, _, _ in tracker.metric_history(run.run_id, "val_loss")][:1] == [5]


def test_a_locked_store_is_not_reported_as_a_missing_run(tracker, baseline_run):
    from orchestrator.errors import StoreError, UserError

    with pytest.raises(UserError, match="no run with id '0+' in "):
        tracker.get_run("0" * 32)
    db = T.sqlite_path(tracker.uri)
    lock = sqlite3.connect(db, timeout=5)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=f"cannot read the MLflow store .*{db}.*locked"):
            tracker.get_run(baseline_run.run_id)
    finally:
        lock.rollback()
        lock.close()
    assert tracker.get_run(baseline_run.run_id).run_id == baseline_run.run_id
