"""Is the process that owns a RUNNING run still there? Runs record their host and pid."""

from __future__ import annotations

import os
import socket

from .schema import TAG_HOST, TAG_PID, TAG_REASON, TAG_STATE, RunState
from .store import RunInfo, Tracker


def alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def orphaned(run: RunInfo) -> bool:
    """A RUNNING run of this host whose process is gone."""
    if run.state is not RunState.RUNNING or run.tags.get(TAG_HOST) != socket.gethostname():
        return False
    pid = int(run.tags.get(TAG_PID, "0") or 0)
    return pid != os.getpid() and not alive(pid)


def reap_stale(tracker: Tracker, runs: list[RunInfo]) -> list[RunInfo]:
    """End as KILLED the RUNNING runs whose process on this host is gone."""
    reaped = []
    for run in runs:
        if not orphaned(run):
            continue
        reason = f"left RUNNING by process {run.tags.get(TAG_PID, '?')}, which no longer exists"
        tracker.end_run(run.run_id, RunState.KILLED, reason)
        run.status = RunState.KILLED.status
        run.tags[TAG_STATE] = str(RunState.KILLED)
        run.tags[TAG_REASON] = reason
        reaped.append(run)
    return reaped
