"""Open a search: validate the options, then create or join the Optuna study and its MLflow
parent run `search:<study>`.

Optuna's unique study name decides who creates: only the creator makes the parent run and
enqueues the baseline's own values as trial 0; every other process (a local worker, another
machine, a re-run) joins them, and is refused if it searches another baseline or space.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

from .. import tracking as T
from ..baseline import baseline_config
from ..config import RunConfig
from ..errors import UserError
from ..progress import Progress
from ..runner import Runner
from ..studies import open_storage
from . import _optuna
from .attrs import ATTR_BASELINE, STUDY_BASELINE, STUDY_PARENT, STUDY_SPACE
from .context import Options, SearchContext
from .recovery import StaleTrials
from .samplers import Sampler, make_pruner, make_sampler
from .space import Space, anchored, check_choices, load_space


def default_study_name(space: Space, baseline_id: str) -> str:
    return f"{Path(space.label).stem}-{baseline_id[:8]}"


def prepare(
    tracker: T.Tracker, options: Options, progress: Progress | None = None
) -> SearchContext:
    """Validate everything, open the storage and the study (creating it and its parent run if
    new). Nothing is recorded before the space, the baseline and the storage are known good."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    space = options.space if isinstance(options.space, Space) else load_space(options.space)
    baseline = T.find_baseline(tracker, options.baseline_id)
    base = baseline_config(baseline)
    space = anchored(space, base)
    check_choices(space, base)
    n_trials = options.trials
    sampler = options.sampler
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, space, options.seed, n_trials)
    if options.sampler == Sampler.GRID:
        n_trials = min(n_trials, math.prod(len(v) for v in space.grid().values()))
    pruner = options.pruner
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, base)
    name = options.study or default_study_name(space, baseline.run_id)
    # A heartbeat-stale trial (RDB storage) is retried once and its MLflow run ended KILLED.
    storage = open_storage(options.storage, tracker.store_dir, on_stale=StaleTrials(tracker))
    study, parent_id = open_study(tracker, storage, name, sampler, pruner, space, baseline, base)
    runner = Runner(tracker, progress, expect_sha256=baseline.params.get("dataset.sha256"))
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    return SearchContext(
        tracker, study, storage, space, base, baseline, parent_id, n_trials, runner, deadline
    )


def open_study(
    tracker: T.Tracker,
    storage,
    name: str,
    sampler,
    pruner,
    space: Space,
    baseline: T.RunInfo,
    base: RunConfig,
) -> tuple[Any, str]:
    """(study, MLflow parent run id): created with the baseline as trial 0, or joined."""
    import optuna

    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="minimize",
            load_if_exists=False,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        return study, join_parent(tracker, study, space, baseline)
    parent_id = tracker.create_run(
        f"search:{name}",
        tags={
            T.TAG_ROLE: T.Role.SEARCH,
            T.TAG_STUDY: name,
            T.TAG_BASELINE: baseline.run_id,
            T.TAG_BASELINE_VALUE: "baseline",
            T.TAG_SPACE: space.label,
        },
    )
    tracker.log_params(parent_id, {"space." + p.name: p.describe() for p in space.params})
    study.set_user_attr(STUDY_BASELINE, baseline.run_id)
    study.set_user_attr(STUDY_SPACE, space.fingerprint())
    study.set_user_attr(STUDY_PARENT, parent_id)
    flat = base.to_flat()
    point = {p.name: flat[p.name] for p in space.params}
    study.enqueue_trial(point, user_attrs={ATTR_BASELINE: True}, skip_if_exists=True)
    if isinstance(sampler, optuna.samplers.GridSampler):
        _optuna.mark_grid_point(study, storage, sampler, point)
    return study, parent_id


def join_parent(
    tracker: T.Tracker, study, space: Space, baseline: T.RunInfo, wait_s: float = 60.0
) -> str:
    """The parent run of a study another process created (reopened if it had ended)."""
    deadline = time.monotonic() + wait_s
    while STUDY_PARENT not in study.user_attrs:  # its creator may be a moment behind
        if time.monotonic() > deadline:
            raise UserError(
                f"study '{study.study_name}' exists but names no MLflow parent run; "
                "use another --study"
            )
        time.sleep(0.5)
    attrs = study.user_attrs
    recorded = attrs.get(STUDY_BASELINE)
    if recorded != baseline.run_id:
        raise UserError(
            f"study '{study.study_name}' searches around baseline {recorded}, not "
            f"{baseline.run_id}; pass --baseline {recorded} or another --study"
        )
    if attrs.get(STUDY_SPACE) != space.fingerprint():
        raise UserError(
            f"study '{study.study_name}' was started with another space "
            f"({attrs.get(STUDY_SPACE)}); use the same --space or another --study"
        )
    parent_id = attrs[STUDY_PARENT]
    if tracker.get_run(parent_id).state is not T.RunState.RUNNING:
        tracker.reopen(parent_id)
    return parent_id
