"""The only package that imports mlflow.

store (Tracker: the MLflow adapter; RunInfo: a run without mlflow types), schema (RunState
and Role enums, tag names), queries (baselines, seeds, sweeps), liveness (is a RUNNING
run's process still there).
"""

from .liveness import alive, orphaned, reap_stale
from .queries import (
    baseline_members,
    baseline_seeds,
    find_baseline,
    find_sweep,
    has_result,
    is_seeded,
    list_sweeps,
    running,
    runs_with_role,
    seeds_label,
    source_of,
)
from .schema import *  # noqa: F403  (tag names, RunState, Role)
from .schema import DEFAULT_EXPERIMENT, Role, RunState
from .store import RunInfo, Tracker, check_reachable, resolve_uri, sqlite_path

__all__ = [
    "DEFAULT_EXPERIMENT",
    "Role",
    "RunInfo",
    "RunState",
    "Tracker",
    "alive",
    "baseline_members",
    "baseline_seeds",
    "check_reachable",
    "find_baseline",
    "find_sweep",
    "has_result",
    "is_seeded",
    "list_sweeps",
    "orphaned",
    "reap_stale",
    "resolve_uri",
    "running",
    "runs_with_role",
    "seeds_label",
    "source_of",
    "sqlite_path",
]
