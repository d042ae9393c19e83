"""A RUNNING run whose process on this host is gone is ended KILLED, with the reason."""

from __future__ import annotations

import subprocess
import sys

from orchestrator import tracking as T
from orchestrator.tracking import RunState


def test_reap_stale_kills_only_runs_whose_process_is_gone(tracker):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tracker.create_run("gone", tags={T.TAG_PID: str(dead.pid)})
    mine = tracker.create_run("mine")  # this process: alive
    other_host = tracker.create_run("other", tags={T.TAG_PID: str(dead.pid), T.TAG_HOST: "x"})
    runs = [tracker.get_run(r) for r in (gone, mine, other_host)]
    assert [r.name for r in T.reap_stale(tracker, runs)] == ["gone"]
    after = tracker.get_run(gone)
    assert after.state is RunState.KILLED and after.status == "KILLED"
    assert f"process {dead.pid}" in after.tags[T.TAG_REASON]
    assert tracker.get_run(mine).state is RunState.RUNNING
    assert tracker.get_run(other_host).state is RunState.RUNNING


def test_alive():
    assert T.alive(__import__("os").getpid())
    assert not T.alive(0) and not T.alive(-1)
