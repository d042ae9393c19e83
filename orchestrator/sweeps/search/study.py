"""Open a search: validate the options, then create or join the Optuna study and its MLflow
parent run `search:<study>`.

Optuna's unique study name decides who creates: only the creator makes the parent run and
enqueues the baseline's own values as trial 0; every other process (a local worker, another
machine, a re-run) joins them, and is refused if it searches another baseline or space.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import tracking as T
from ...config import RunConfig
from ...errors import UserError
from ...execution.env import RunEnv
from ...studies import open_storage
from ..baseline import against
from ..sweep import Sweep
from .attrs import ATTR_BASELINE, STUDY_BASELINE, STUDY_PARENT, STUDY_SPACE
from .budget import counted
from .context import Options, SearchContext
from .recovery import StaleTrials
from .samplers import Sampler, grid_points, make_pruner, make_sampler
from .space import Space, anchored, check_choices, load_space, space_notes

METRIC = "best_val_loss"  # what a trial returns to Optuna


def default_study_name(space: Space, baseline_id: str) -> str:
    return f"{Path(space.label).stem}-{baseline_id[:8]}"


def prepare(env: RunEnv, options: Options, say_notes: bool = True) -> SearchContext:
    """Validate everything, open the storage and the study (creating it and its parent run if
    new). Nothing is recorded before the space, the baseline and the storage are known good."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    space = options.space if isinstance(options.space, Space) else load_space(options.space)
    baseline, base = against(env, options.baseline_id)
    space = anchored(space, base)
    check_choices(space, base)
    for note in space_notes(space, base) if say_notes else []:
        env.progress.warn(note)
    n_trials = options.trials
    sampler = options.sampler
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, space, options.seed, n_trials)
    queue: list[dict[str, Any]] = []
    if options.sampler == Sampler.GRID:
        queue = grid_points(space, options.seed)
        n_trials = min(n_trials, len(queue))
    pruner = options.pruner
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, base)
    name = options.study or default_study_name(space, baseline.run_id)
    # A heartbeat-stale trial (RDB storage) is retried once and its MLflow run ended KILLED.
    storage = open_storage(
        options.storage,
        env.tracker.store_dir,
        on_stale=StaleTrials(env.tracker),
        warn=env.progress.warn if say_notes else None,
    )
    study, sweep = open_study(
        env, storage, name, sampler, pruner, space, baseline, base, queue, n_trials
    )
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    return SearchContext(
        env.tracker, study, storage, space, base, baseline, sweep, n_trials, deadline
    )


def open_study(
    env: RunEnv,
    storage,
    name: str,
    sampler,
    pruner,
    space: Space,
    baseline: T.RunInfo,
    base: RunConfig,
    queue: Sequence[dict[str, Any]] = (),
    n_trials: int = 0,
) -> tuple[Any, Sweep]:
    """(study, its Sweep): created with the baseline as trial 0, or joined.
    `queue`: points to enqueue (a grid, samplers.py) until the study holds `n_trials`."""
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
        name_metric(study)
        sweep = join_parent(env, study, space, baseline)
        fill_queue(study, queue, n_trials)  # a re-run with a larger --trials
        return study, sweep
    sweep = Sweep.create(
        env,
        f"search:{name}",
        {
            T.TAG_ROLE: T.Role.SEARCH,
            T.TAG_STUDY: name,
            T.TAG_BASELINE: baseline.run_id,
            T.TAG_BASELINE_VALUE: "baseline",
            T.TAG_SPACE: space.label,
        },
        params={"space." + p.name: p.describe() for p in space.params},
    )
    name_metric(study)
    study.set_user_attr(STUDY_BASELINE, baseline.run_id)
    study.set_user_attr(STUDY_SPACE, space.fingerprint())
    flat = base.to_flat()
    point = {p.name: flat[p.name] for p in space.params}
    study.enqueue_trial(point, user_attrs={ATTR_BASELINE: True}, skip_if_exists=True)
    fill_queue(study, queue, n_trials)
    # Last: a process joining the study waits for this, so it finds the queue filled.
    study.set_user_attr(STUDY_PARENT, sweep.run_id)
    return study, sweep


def name_metric(study) -> None:
    """The objective's name in Optuna (its dashboard and figures say `best_val_loss`, not
    "Objective 0"); written once, by whoever finds it missing."""
    if study.metric_names != [METRIC]:
        study.set_metric_names([METRIC])


def fill_queue(study, points: Sequence[dict[str, Any]], n_trials: int) -> None:
    """Enqueue `points` in order, skipping those already in the study (any state: a grid
    point is tried once), until the study holds `n_trials` trials that count."""
    for point in points:
        if len(counted(study.get_trials(deepcopy=False))) >= n_trials:
            return
        study.enqueue_trial(point, skip_if_exists=True)


def join_parent(
    env: RunEnv, study, space: Space, baseline: T.RunInfo, wait_s: float = 60.0
) -> Sweep:
    """The sweep of a study another process created (its parent reopened if it had ended)."""
    attrs = wait_for_parent(env, study, wait_s)
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
    parent = env.tracker.get_run(attrs[STUDY_PARENT])
    # search trials are recovered by the search (recovery.py), which also fails their
    # Optuna trial: the sweep does not reap them
    return Sweep.resume(env, parent, reap=False)


def wait_for_parent(env: RunEnv, study, wait_s: float) -> dict[str, Any]:
    """The study's attributes once they name its MLflow parent run. Its creator writes that
    link last (a joiner then finds the queue filled), so a joiner waits for it; a link lost
    with a torn journal line (the creator crashed writing it) is found again from MLflow's
    side, the parent run `search:<study>` of the same baseline, and written back: at once
    when no live process holds that run, else when the wait is over."""
    deadline = time.monotonic() + wait_s
    while True:
        attrs = study.user_attrs
        if STUDY_PARENT in attrs:
            return attrs
        found = T.find_search(env.tracker, study.study_name, attrs.get(STUDY_BASELINE))
        creator_gone = found is not None and (
            found.state is not T.RunState.RUNNING or T.orphaned(found)
        )
        if creator_gone or (found is not None and time.monotonic() > deadline):
            env.progress.warn(
                f"study '{study.study_name}' had lost its link to its MLflow parent run "
                f"(a torn journal line): found it again, run {found.run_id}"
            )
            study.set_user_attr(STUDY_PARENT, found.run_id)
            continue
        if time.monotonic() > deadline:
            raise UserError(
                f"study '{study.study_name}' exists but names no MLflow parent run; "
                "use another --study"
            )
        time.sleep(0.5)
