"""Confirm a search's winners: re-train its top trials on seeds the search never trained.

A search winner is the best of many single-seed draws, so its val loss is biased low (the
winner's curse), and re-training it on the seed it was selected on would bring the curse
back (the same run, bit for bit). `sweep confirm` takes the top K finished trials of a
search (by best val loss, read from their MLflow runs: any Optuna storage works), trains
each configuration again on fresh seeds: the baseline's seeds that no trial trained, and
new baseline seeds where those are too few, under a parent `confirm:<study>`, with the same
paired verdicts against the baseline as an ablation. Resumable like an ablation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import tracking as T
from ..config import RunConfig, recorded_config
from ..errors import UserError
from ..execution.env import RunEnv
from ..execution.spec import Outcome, RunSpec
from ..results.settings import settings_for
from ..tracking import Role
from .baseline import add_seed, against
from .sweep import Sweep

if TYPE_CHECKING:
    from ..results.table import Table


@dataclass
class ConfirmResult:
    parent_id: str
    table: Table
    trained: list[Outcome]
    candidates: list[str]  # the trials confirmed, best first
    seeds: list[int]  # the seeds they were confirmed on
    notes: list[str]


def finished_trials(tracker: T.Tracker, search: T.RunInfo) -> list[T.RunInfo]:
    """The search's trials that trained to the end, best (lowest best val loss) first."""
    runs = [
        r
        for r in tracker.children(search.run_id)
        if T.has_result(r) and math.isfinite(r.metrics.get("best_val_loss", math.nan))
    ]
    return sorted(runs, key=lambda r: (r.metrics["best_val_loss"], r.start_time))


def find_search(tracker: T.Tracker, sweep_id: str | None) -> T.RunInfo:
    if sweep_id is None:
        runs = T.runs_with_role(tracker, (Role.SEARCH,))
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


def choose(
    env: RunEnv, search: T.RunInfo, base: RunConfig, top: int
) -> tuple[list[tuple[T.RunInfo, RunConfig]], list[str]]:
    """The best `top` finished trials that differ from the baseline and from each other."""
    trials = finished_trials(env.tracker, search)
    if top < 1 or top > len(trials):
        raise UserError(
            f"--top must be between 1 and the {len(trials)} finished trial(s) of {search.name} "
            f"(got {top})"
        )
    notes: list[str] = []
    chosen: list[tuple[T.RunInfo, RunConfig]] = []
    for run in trials:
        cfg = env.run_only(recorded_config(run))
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
    return chosen, notes


def fresh_seeds(
    baseline: T.RunInfo, trials: list[T.RunInfo], n: int
) -> tuple[list[int], list[int]]:
    """`n` seeds no trial of the search trained: the baseline's own first, then new ones
    (returned second: the baseline must gain them before the pairs can be made)."""
    used = {int(s) for r in trials if (s := r.tags.get(T.TAG_SEED, "")).isdigit()}
    have = T.baseline_seeds(baseline)
    seeds = [s for s in have if s not in used][:n]
    new: list[int] = []
    nxt = max([*have, *used]) + 1
    while len(seeds) + len(new) < n:
        new.append(nxt)
        nxt += 1
    return seeds + new, new


def confirm_specs(chosen: list[tuple[T.RunInfo, RunConfig]], seeds: list[int]) -> list[RunSpec]:
    """One run per chosen trial and seed, named `trial-N/seed=S`, in the trial's row."""
    return [
        RunSpec(
            cfg.replace(seed=s),
            f"{run.name}/seed={s}",
            {
                T.TAG_ROLE: Role.CONFIRM_RUN,
                T.TAG_VALUE: run.tags.get(T.TAG_VALUE, run.name),
                T.TAG_TRIAL: run.tags.get(T.TAG_TRIAL, ""),
            },
        )
        for run, cfg in chosen
        for s in seeds
    ]


def confirm_seeds(existing: T.RunInfo | None, baseline: T.RunInfo) -> int:
    """Seeds per trial when --seeds is left out: what this confirmation recorded, else as
    many as the baseline has (which grows as confirmations add fresh seeds to it)."""
    if existing is not None and existing.tags.get(T.TAG_SEEDS, "").isdigit():
        return int(existing.tags[T.TAG_SEEDS])
    return len(T.baseline_seeds(baseline))


def run_confirm(
    env: RunEnv,
    sweep_id: str | None = None,
    top: int = 3,
    seeds: int | None = None,
    *,
    margin: float | None = None,
    alpha: float | None = None,
) -> ConfirmResult:
    """Re-train the top `top` trials on fresh seeds (as many as the baseline has, or
    `seeds`). `margin`/`alpha` left out: what an earlier confirmation of this search
    recorded, else the defaults."""
    tracker = env.tracker
    search = find_search(tracker, sweep_id)
    baseline, base = against(env, search.tags.get(T.TAG_BASELINE))
    chosen, notes = choose(env, search, base, top)
    key = {T.TAG_ROLE: Role.CONFIRM, T.TAG_SEARCH_RUN: search.run_id}
    existing = Sweep.find(tracker, key)
    n = seeds if seeds is not None else confirm_seeds(existing, baseline)
    if n < 2:
        raise UserError(f"--seeds must be at least 2 to confirm (got {n})")
    seed_values, new = fresh_seeds(baseline, tracker.children(search.run_id), n)
    if new and not T.is_seeded(baseline):
        raise UserError(
            f"the search trained seed {base.train.seed}, the baseline's only seed: confirming on "
            "fresh seeds needs a baseline recorded with `--seeds 2` or more"
        )
    study = search.tags.get(T.TAG_STUDY) or search.name.removeprefix("search:")
    settings, changed = settings_for(existing, alpha, margin)
    notes += changed
    sweep = Sweep.open(
        env,
        f"confirm:{study}",
        key,
        settings=settings,
        tags={T.TAG_STUDY: study, T.TAG_BASELINE: baseline.run_id},
    )
    tracker.set_tags(sweep.run_id, {T.TAG_SEEDS: str(n)})
    env.progress.say(
        f"confirming {len(chosen)} trial(s) of {search.name} on seeds "
        f"{', '.join(map(str, seed_values))} (none of them trained by the search): "
        + ", ".join(r.name for r, _ in chosen)
    )
    with sweep.guard():
        for s in new:
            out = add_seed(env, tracker.get_run(baseline.run_id), s)
            if not out.state.has_result:
                raise UserError(f"baseline seed {s} did not finish ({out.reason}): cannot confirm")
        trained = [o for o in sweep.train(confirm_specs(chosen, seed_values)) if o.new]
        table = sweep.close()
    return ConfirmResult(
        sweep.run_id, table, trained, [r.name for r, _ in chosen], seed_values, notes
    )
