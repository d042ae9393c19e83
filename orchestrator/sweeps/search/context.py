"""What a search is asked for (`Options`, checked once, handed to every worker) and what one
process shares while it runs trials (`SearchContext`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ... import tracking as T
from ...config import MAX_SEED, RunConfig
from ...errors import UserError
from ...execution.env import RunEnv
from ...progress import Progress
from ...studies import heartbeat_seconds, is_journal
from ..sweep import Sweep
from .attrs import ATTR_WORKER
from .samplers import Pruner, Sampler
from .space import Space


@dataclass(frozen=True)
class Options:
    """What `sweep search` was asked for; checked here, built once, handed to every worker.

    `space`, `sampler` and `pruner` are names (or, in one process, ready objects); `trials`
    is the study-wide budget (budget.py); `timeout` is in seconds from the start of a worker.
    """

    trials: int = 20
    space: str | Space = "default"
    sampler: str | Any = "tpe"
    pruner: str | Any = "hyperband"
    study: str | None = None
    storage: str | None = None
    workers: int = 1
    seed: int | None = None
    timeout: float | None = None
    baseline_id: str | None = None
    threads: int | None = None  # torch threads per trial; None: auto (a worker's share)
    launcher: str = "local"  # where the workers run: this machine, or jobs of a cluster

    def __post_init__(self):
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1 (got {self.workers})")
        if self.launcher != "local" and is_journal(self.storage):
            raise UserError(
                f"--launcher {self.launcher}: the Optuna journal file cannot be shared safely "
                "by workers on other machines; pass --storage postgresql://USER:PASSWORD@HOST/DB "
                "(a database the nodes reach)"
            )
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise UserError(
                f"--timeout must be a finite number of seconds > 0 (got {self.timeout})"
            )
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must be an integer in [0, {MAX_SEED}] (got {self.seed})")
        named = all(isinstance(x, str) for x in (self.sampler, self.pruner, self.space))
        if (self.workers > 1 or self.launcher != "local") and not named:
            raise UserError("--workers > 1 takes sampler, pruner and space by name")
        if self.workers > 1 and self.launcher == "local":
            limit, why = worker_limit()
            if self.workers > limit:
                raise UserError(
                    f"--workers {self.workers} is more than this machine can run: at most "
                    f"{limit} ({why})"
                )
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1 (got {self.trials})")
        if isinstance(self.sampler, str):
            Sampler.parse(self.sampler)
        if isinstance(self.pruner, str):
            Pruner.parse(self.pruner)


WORKER_MEMORY_GIB = 1.0  # per local worker: ~0.5 GiB RSS measured on smoke, room for more


def worker_limit() -> tuple[int, str]:
    """How many local workers this machine runs sensibly, and why: one per CPU core this
    process may use, and no more than the available memory (MemAvailable) holds at
    WORKER_MEMORY_GIB each (a worker holds torch, MLflow, Optuna and its model)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    why = f"{cores} CPU core(s)"
    limit = cores
    available = available_memory_gib()
    if available is not None:
        by_memory = max(1, int(available // WORKER_MEMORY_GIB))
        limit = min(limit, by_memory)
        why += f"; {available:.1f} GiB of memory available at ~{WORKER_MEMORY_GIB:g} GiB a worker"
    return max(1, limit), why


def available_memory_gib() -> float | None:
    """MemAvailable from /proc/meminfo, in GiB (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


UNNAMED_HEARTBEATS = 10  # heartbeats a trial may go without naming its worker


class Unnamed:
    """RUNNING trials that name no worker, as this process has watched them.

    A worker names its trial (`sweep.worker`) first thing in the objective, a moment after
    Optuna creates it. A worker killed in between (SIGKILL, the OOM killer, a lost node,
    inside `study.ask`) leaves a trial with no heartbeat and no pid, which neither Optuna nor
    `fail_dead_local` would ever end: the study would wait for it forever. One still unnamed
    `limit_s` after this process first saw it is `overdue`. Timed on this process's clock:
    the trial's own start time was written by another machine's."""

    def __init__(self, limit_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.limit_s = UNNAMED_HEARTBEATS * heartbeat_seconds() if limit_s is None else limit_s
        self.clock = clock
        self.first_seen: dict[int, float] = {}

    def overdue(self, running: list) -> list:
        now = self.clock()
        unnamed = [t for t in running if ATTR_WORKER not in t.user_attrs]
        self.first_seen = {t.number: self.first_seen.get(t.number, now) for t in unnamed}
        return [t for t in unnamed if now - self.first_seen[t.number] >= self.limit_s]


@dataclass
class SearchContext:
    """What one process shares while it runs trials of one study."""

    tracker: T.Tracker
    study: Any  # optuna.Study
    storage: Any  # the storage the study was opened on
    space: Space  # anchored: holds the baseline's own values
    base: RunConfig  # the baseline's recorded config
    baseline: T.RunInfo
    sweep: Sweep  # the MLflow parent run `search:<study>`
    n_trials: int  # the study-wide budget (a grid caps it at its size)
    deadline: float | None = None  # time.monotonic() after which no trial starts
    unnamed: Unnamed = field(default_factory=Unnamed)  # trials whose worker died in `ask`

    @property
    def env(self) -> RunEnv:
        return self.sweep.env

    @property
    def parent_id(self) -> str:
        return self.sweep.run_id

    @property
    def progress(self) -> Progress:
        return self.sweep.env.progress

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()
