"""A locked or read-only MLflow store: one line, exit 1, nothing recorded lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest
from clitools import (
    one_error_line,
    sweep,
)
from smoke_store import smoke_store  # noqa: F401  (fixture)

from orchestrator import tracking as T


def test_a_locked_store_is_one_line_exit_1_and_loses_nothing(tracker, baseline_run):
    db = T.sqlite_path(tracker.uri)
    before = [(r.run_id, r.status) for r in tracker.search()]
    lock = sqlite3.connect(db, timeout=1)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", tracker.uri)
    finally:
        lock.rollback()
        lock.close()
    assert r.exit_code == 1, r.output
    line = one_error_line(r)
    assert str(db) in line and "locked" in line
    assert len(r.output.strip().splitlines()) <= 3, r.output  # not 90-350 lines of traceback
    assert [(r.run_id, r.status) for r in tracker.search()] == before


def test_a_read_only_store_is_one_line_exit_1(tracker, baseline_run, tmp_path):
    src = T.sqlite_path(tracker.uri).parent
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(src), str(ro)]).returncode:
        pytest.skip("needs root to bind-mount the store read-only (CI runs as root)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        uri = f"sqlite:///{ro / 'mlflow.db'}"
        before = [(r.run_id, r.status) for r in tracker.search()]
        r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", uri)
        assert r.exit_code == 1, r.output
        line = one_error_line(r)
        assert str(ro / "mlflow.db") in line and "readonly" in line, line
        assert len(r.output.strip().splitlines()) <= 3, r.output
        assert [(x.run_id, x.status) for x in tracker.search()] == before
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
