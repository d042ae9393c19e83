"""Optuna studies around the recorded baseline, every trial a nested MLflow run.

Every trial is the baseline's recorded config with only the searched keys changed, trained
by the execution layer as the child run `trial-<number>` of a parent `search:<study>`. Several local
worker processes (`--workers`) or machines (`--storage postgresql://...`) join one study by
name; `--trials N` is the budget of the whole study.

Modules, one concept each:
  space       the searched keys (TOML), anchored on the baseline; a trial's config
  samplers    Sampler / Pruner names and the Optuna objects behind them
  context     Options (what was asked, checked once) and SearchContext (shared state)
  study       create or join the study and its parent run, build the SearchContext
  objective   one trial: sample, train (or skip a duplicate), report to the pruner
  recovery    trials of dead workers: failed, retried once, their runs ended KILLED
  budget      what counts against --trials
  workers     the work loop of one process; local worker processes
  summary     table, best trial, figures, closing the parent run, printed lines
  attrs       the attribute names a study records in Optuna
"""

from __future__ import annotations

from typing import Any

from ... import tracking as T
from ...errors import Interrupted, first_line
from ...execution.env import RunEnv
from ...execution.estimate import say_estimate
from ...execution.processes import signals_held
from ...studies import journal_failure, storage_label, storage_tag
from .budget import budget
from .context import Options, SearchContext
from .recovery import reconcile
from .space import Space, load_space, space_names
from .study import prepare
from .summary import SearchResult, close_parent_if_idle, detached, finish, report_lines
from .workers import run_workers, work

__all__ = ["Options", "SearchResult", "load_space", "report_lines", "run_search", "space_names"]


def announce(ctx: SearchContext, options: Options) -> list[str]:
    """Where the study is, how far it got and how long the rest may take; notes for the end."""
    env, storage = ctx.env, options.storage
    store_dir = env.tracker.store_dir
    env.tracker.set_tags(ctx.parent_id, {T.TAG_STORAGE: storage_tag(storage, store_dir)})
    notes: list[str] = []
    if ctx.n_trials < options.trials:
        notes.append(
            f"the grid has {ctx.n_trials} points: the study stops at {ctx.n_trials} trials"
        )
    before = budget(ctx.study.get_trials(deepcopy=False))
    env.progress.say(
        f"study '{ctx.study.study_name}' ({storage_label(storage, store_dir)}): "
        f"{before.finished} of {ctx.n_trials} trials finished; MLflow parent run {ctx.parent_id}"
    )
    left = max(0, ctx.n_trials - before.finished)
    say_estimate(env, ctx.base, left, what="trial", parallel=options.workers, bound="at most ")
    return notes


def run_search(
    env: RunEnv,
    *,
    trials: int = 20,
    space: str | Space = "default",
    sampler: str | Any = "tpe",
    pruner: str | Any = "hyperband",
    study_name: str | None = None,
    storage: str | None = None,
    workers: int = 1,
    seed: int | None = None,
    timeout: float | None = None,
    baseline_id: str | None = None,
    plots: bool = True,
) -> SearchResult:
    """Run (or join, or resume) a study until it holds `trials` finished trials."""
    options = Options(
        trials=trials,
        space=space,
        sampler=sampler,
        pruner=pruner,
        study=study_name,
        storage=storage,
        workers=workers,
        seed=seed,
        timeout=timeout,
        baseline_id=baseline_id,
        threads=env.threads,
        launcher=env.launcher.name if env.launcher else "local",
    )
    ctx = prepare(env, options)
    notes = announce(ctx, options)
    try:
        if workers == 1 and env.launcher is None:
            work(ctx)
        else:
            jobs = run_workers(ctx, options)
            if env.launcher is not None and env.launcher.detach:
                return detached(ctx, storage, notes, jobs)  # the workers close the parent
        reconcile(ctx)
    except (KeyboardInterrupt, Interrupted) as e:
        with signals_held():  # a second Ctrl-C does not leave the parent RUNNING
            close_parent_if_idle(ctx, T.RunState.KILLED, f"interrupted ({e or 'Ctrl-C'})")
        raise
    except BaseException as e:
        lost = journal_failure(e)
        if lost is not None:  # the study is gone with its journal: close through MLflow only
            ctx.sweep.end(T.RunState.FAILED, first_line(lost))
            raise lost from None
        close_parent_if_idle(ctx, T.RunState.FAILED, f"{type(e).__name__}: {e}")
        raise
    return finish(ctx, storage, notes, plots)
