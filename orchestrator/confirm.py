"""Confirm a search's winners: re-train its top trials with the baseline's seeds.

A search winner is the best of many single-seed draws, so its val loss is biased low (the
winner's curse). `sweep confirm` takes the top K finished trials of a search (by best val
loss, read from their MLflow runs: any Optuna storage works), trains each configuration
again with the baseline's seeds under a parent `confirm:<study>`, and gives them the same
paired verdicts against the baseline as an ablation. Resumable like an ablation: a
(configuration, seed) already finished is not trained again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import tracking as T
from .baseline import baseline_config, comparison_seeds, precision_note
from .config import RunConfig, config_params, from_flat
from .errors import UserError
from .progress import Progress
from .results.settings import settings_for
from .runner import Outcome, Runner, parent_run
from .tracking import Role, RunState

TAG_SEARCH = T.TAG_SEARCH_RUN


@dataclass
class ConfirmResult:
    parent_id: str
    trained: list[Outcome]
    candidates: list[str]  # the trials confirmed, best first
    notes: list[str]


def finished_trials(tracker: T.Tracker, search: T.RunInfo) -> list[T.RunInfo]:
    """The search's trials that trained to the end, best (lowest best val loss) first."""
    runs = [
        r
        for r in tracker.children(search.run_id)
        if r.state is RunState.COMPLETE and math.isfinite(r.metrics.get("best_val_loss", math.nan))
    ]
    return sorted(runs, key=lambda r: (r.metrics["best_val_loss"], r.start_time))


def trial_cfg(run: T.RunInfo) -> RunConfig:
    try:
        return from_flat(config_params(run.params))
    except Exception as e:  # a store written by another version of the tool
        raise UserError(
            f"trial run {run.run_id} has a config this version cannot read: {e}"
        ) from None


def find_search(tracker: T.Tracker, sweep_id: str | None) -> T.RunInfo:
    if sweep_id is None:
        runs = [r for r in T.list_sweeps(tracker) if r.tags.get(T.TAG_ROLE) == Role.SEARCH]
        if not runs:
            raise UserError(
                f"no search in experiment '{tracker.experiment_name}' yet: run `sweep search` first"
            )
        return runs[0]
    run = tracker.get_run(sweep_id)
    if run.tags.get(T.TAG_ROLE) != Role.SEARCH:
        raise UserError(
            f"run {sweep_id} is not a search (its role is '{run.tags.get(T.TAG_ROLE, 'none')}'): "
            "`sweep confirm` re-trains the top trials of a search"
        )
    return run


def run_confirm(
    tracker: T.Tracker,
    sweep_id: str | None = None,
    top: int = 3,
    seeds: int | None = None,
    progress: Progress | None = None,
    *,
    margin: float | None = None,
    alpha: float | None = None,
    threads: int | None = None,
) -> ConfirmResult:
    """Re-train the top `top` trials with the baseline's seeds (or `seeds`). `margin`/`alpha`
    left out: what an earlier confirmation of this search recorded, else the defaults."""
    progress = progress or Progress(live=False)
    search = find_search(tracker, sweep_id)
    baseline = T.find_baseline(tracker, search.tags.get(T.TAG_BASELINE))
    base = baseline_config(baseline)
    if note := precision_note(tracker, baseline, base):
        progress.warn(note)
    seed_values = comparison_seeds(baseline, base, seeds)
    trials = finished_trials(tracker, search)
    if top < 1 or top > len(trials):
        raise UserError(
            f"--top must be between 1 and the {len(trials)} finished trial(s) of {search.name} "
            f"(got {top})"
        )
    notes: list[str] = []
    chosen: list[tuple[T.RunInfo, RunConfig]] = []
    for run in trials:
        cfg = trial_cfg(run)
        if threads is not None:  # how it runs, not what it trains: outside the config hash
            cfg = cfg.replace(threads=threads)
        if cfg.replace(seed=base.train.seed).config_hash() == base.config_hash():
            notes.append(f"{run.name} is the baseline's own configuration: not confirmed")
            continue
        if any(
            cfg.replace(seed=0).config_hash() == c.replace(seed=0).config_hash() for _, c in chosen
        ):
            continue  # a duplicate trial of a configuration already chosen
        chosen.append((run, cfg))
        if len(chosen) == top:
            break
    if not chosen:
        raise UserError(
            f"{search.name}: no finished trial differs from the baseline; nothing to confirm"
        )

    study = search.tags.get(T.TAG_STUDY) or search.name.removeprefix("search:")
    runner = Runner(tracker, progress, expect_sha256=baseline.params.get("dataset.sha256"))
    existing = tracker.search(
        f"tags.`{T.TAG_ROLE}` = '{Role.CONFIRM}' and tags.`{TAG_SEARCH}` = '{search.run_id}'"
    )
    settings, changed = settings_for(existing[0] if existing else None, alpha, margin)
    notes += changed
    if existing:
        parent_id = existing[0].run_id
        tracker.reopen(parent_id)
        tracker.set_tags(parent_id, settings.tags())
        children = tracker.children(parent_id)
        T.reap_stale(tracker, children)
    else:
        parent_id = tracker.create_run(
            f"confirm:{study}",
            tags={
                T.TAG_ROLE: Role.CONFIRM,
                T.TAG_STUDY: study,
                T.TAG_BASELINE: baseline.run_id,
                TAG_SEARCH: search.run_id,
                **settings.tags(),
            },
        )
        children = []
    done = {r.tags.get(T.TAG_CONFIG_HASH) for r in children if r.state is RunState.COMPLETE}
    todo = [
        (run, cfg.replace(seed=s), s)
        for run, cfg in chosen
        for s in seed_values
        if cfg.replace(seed=s).config_hash() not in done
    ]
    progress.say(
        f"confirming {len(chosen)} trial(s) of {search.name} with seeds "
        f"{', '.join(map(str, seed_values))}: {', '.join(r.name for r, _ in chosen)}"
    )
    progress.sweep(len(todo))
    trained: list[Outcome] = []
    with parent_run(tracker, parent_id):
        for run, cfg, s in todo:
            tags = {
                T.TAG_ROLE: Role.CONFIRM_RUN,
                T.TAG_VALUE: run.tags.get(T.TAG_VALUE, run.name),
                T.TAG_TRIAL: run.tags.get(T.TAG_TRIAL, ""),
            }
            trained.append(
                runner.train(cfg, f"{run.name}/seed={s}", parent_id=parent_id, tags=tags)
            )
        from .results.table import attach_table, sweep_table

        attach_table(tracker, parent_id, sweep_table(tracker, tracker.get_run(parent_id)))
    tracker.end_run(parent_id, RunState.COMPLETE)
    return ConfirmResult(parent_id, trained, [r.name for r, _ in chosen], notes)
