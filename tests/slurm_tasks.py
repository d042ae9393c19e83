"""Callables the Slurm tests run as array tasks on the node.

tests/ is not importable there, so the tests register this module with cloudpickle to be
pickled by value (`cloudpickle.register_pickle_by_value`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def square(x: int) -> tuple[int, str | None, str | None]:
    """x*x and the array ids the task ran under; a negative x fails the call."""
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x, os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")


def sleep(seconds: float, started: str | None = None) -> float:
    """Sleep; touch `started` first when given (the test waits for it)."""
    if started:
        Path(started).write_text(os.environ.get("SLURM_JOB_ID", ""), encoding="utf-8")
    time.sleep(seconds)
    return seconds


def slow_once(marker: str) -> tuple[str, str | None]:
    """First run: leave `marker` and outlast any short time limit. A rerun of the same
    call (a requeue) finds the marker and returns at once, with Slurm's restart count."""
    path = Path(marker)
    if path.exists():
        return "rerun", os.environ.get("SLURM_RESTART_COUNT")
    path.write_text(os.environ.get("SLURM_JOB_ID", ""), encoding="utf-8")
    time.sleep(600)
    return "first run", None  # not reached in the tests: the time limit comes first


class Resumable:
    """A checkpointable callable with its own state: `checkpoint()` records that it was
    called, and the requeued task runs the callable as checkpointed, with that state."""

    def __init__(self, started: str) -> None:
        self.started = started
        self.runs = 0
        self.checkpointed = False

    def __call__(self) -> dict:
        self.runs += 1
        if self.checkpointed:
            return {
                "runs": self.runs,
                "checkpointed": True,
                "restarts": os.environ.get("SLURM_RESTART_COUNT"),
            }
        Path(self.started).write_text("running", encoding="utf-8")
        time.sleep(600)
        return {"runs": self.runs, "checkpointed": False}  # not reached: preempted first

    def checkpoint(self):
        from submitit.helpers import DelayedSubmission

        self.checkpointed = True
        return DelayedSubmission(self)
