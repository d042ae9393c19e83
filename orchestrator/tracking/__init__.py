"""The only package that imports mlflow.

store (Tracker: the MLflow adapter; RunInfo: a run without mlflow types), reach (is the
store there, are its credentials taken), schema (RunState and Role enums, tag names), queries
(baselines, seeds, sweeps), liveness (is a RUNNING run's process still there), models (a
checkpoint as a registered MLflow Model).
"""

from .liveness import alive, orphaned, reap_stale
from .queries import (
    baseline_members,
    baseline_seeds,
    deleted_message,
    find_baseline,
    find_search,
    find_sweep,
    has_result,
    is_seeded,
    list_sweeps,
    running,
    runs_with_role,
    seeds_label,
    source_of,
)
from .reach import check_reachable, sqlite_path
from .schema import *  # noqa: F403  (tag names, RunState, Role)
from .schema import DEFAULT_EXPERIMENT, Role, RunState
from .store import RunInfo, Tracker, resolve_uri

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
    "deleted_message",
    "find_baseline",
    "find_search",
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
