"""Confirm a search's winners: re-train its top trials on seeds the search never trained,
adding seeds until each is decided.

A search winner is the best of many single-seed draws, so its val loss is biased low (the
winner's curse), and re-training it on the seed it was selected on would bring the curse
back (the same run, bit for bit). `sweep confirm` takes the top K finished trials of a
search (by best val loss, read from their MLflow runs: any Optuna storage works), trains
each configuration again on fresh seeds: the baseline's seeds that no trial trained, and
new baseline seeds where those are too few, under a parent `confirm:<study>`, with the same
paired verdicts against the baseline as an ablation. Resumable like an ablation.

Until clear by default: --seeds (3) fresh seeds first, then one more fresh seed at a time
for the rows still undecided, up to --max-seeds (10). Three seeds are too few for verdicts
that hold at every look: at a real -0.05 nats (seed sd 0.03) a 3-row confirmation calls the
real row better about 3% of the time at 3 seeds, and about 81% adding seeds until clear up
to 10 (benchmarks/verdicts.py). `--max-seeds` equal to `--seeds` gives a fixed confirmation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import tracking as T
from ..config import RunConfig, recorded_config
from ..errors import UserError
from ..execution.env import RunEnv
from ..execution.estimate import say_estimate
from ..execution.spec import Outcome, RunSpec
from ..results.settings import settings_for
from ..tracking import Role
from .baseline import add_seed, against
from .sweep import Sweep
from .until_clear import UntilClear, add_seeds_until_clear

START_SEEDS = 3  # fresh seeds per trial before any is added
DEFAULT_MAX_SEEDS = 10

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


def search_seeds(trials: list[T.RunInfo]) -> set[int]:
    """The seeds a search's trials trained."""
    return {int(s) for r in trials if (s := r.tags.get(T.TAG_SEED, "")).isdigit()}


def fresh_seeds(
    baseline: T.RunInfo, trials: list[T.RunInfo], n: int
) -> tuple[list[int], list[int]]:
    """`n` seeds no trial of the search trained: the baseline's own first, then new ones
    (returned second: the baseline must gain them before the pairs can be made)."""
    used = search_seeds(trials)
    have = T.baseline_seeds(baseline)
    seeds = [s for s in have if s not in used][:n]
    new: list[int] = []
    nxt = max([*have, *used]) + 1
    while len(seeds) + len(new) < n:
        new.append(nxt)
        nxt += 1
    return seeds + new, new


def value_of(run: T.RunInfo) -> str:
    """The row a trial's confirmation runs go in (the trial's own row name)."""
    return run.tags.get(T.TAG_VALUE, run.name)


def confirm_spec(run: T.RunInfo, cfg: RunConfig, seed: int) -> RunSpec:
    """One run of a chosen trial at a seed, named `trial-N/seed=S`, in the trial's row."""
    tags = {
        T.TAG_ROLE: Role.CONFIRM_RUN,
        T.TAG_VALUE: value_of(run),
        T.TAG_TRIAL: run.tags.get(T.TAG_TRIAL, ""),
    }
    return RunSpec(cfg.replace(seed=seed), f"{run.name}/seed={seed}", tags)


def confirm_specs(chosen: list[tuple[T.RunInfo, RunConfig]], seeds: list[int]) -> list[RunSpec]:
    """One run per chosen trial and seed."""
    return [confirm_spec(run, cfg, s) for run, cfg in chosen for s in seeds]


def confirm_seeds(existing: T.RunInfo | None) -> int:
    """Fresh seeds per trial to start with when --seeds is left out: what this confirmation
    recorded, else START_SEEDS."""
    if existing is not None and existing.tags.get(T.TAG_SEEDS, "").isdigit():
        return int(existing.tags[T.TAG_SEEDS])
    return START_SEEDS


def until_clear_plan(
    chosen: list[tuple[T.RunInfo, RunConfig]], used: set[int], n: int, max_seeds: int | None
) -> UntilClear:
    """Fresh seeds added one at a time to the undecided rows, up to --max-seeds."""
    top = DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds
    if top < n:
        raise UserError(f"--max-seeds {top} is below the {n} seeds to start with (--seeds)")
    by_value = {value_of(run): (run, cfg) for run, cfg in chosen}
    return UntilClear(
        values=list(by_value),
        spec=lambda v, s: confirm_spec(*by_value[v], s),
        max_seeds=top,
        avoid=used,
        label=lambda v: by_value[v][0].name,
        estimate=False,
    )


def run_confirm(
    env: RunEnv,
    sweep_id: str | None = None,
    top: int = 3,
    seeds: int | None = None,
    *,
    margin: float | None = None,
    alpha: float | None = None,
    max_seeds: int | None = None,
) -> ConfirmResult:
    """Re-train the top `top` trials on `seeds` fresh seeds (START_SEEDS, or what this
    confirmation recorded), then add fresh seeds to the undecided rows until each is decided
    or has `max_seeds` (DEFAULT_MAX_SEEDS). `margin`/`alpha` left out: what this
    confirmation recorded, else the defaults (fixed at its first table)."""
    tracker = env.tracker
    search = find_search(tracker, sweep_id)
    baseline, base = against(env, search.tags.get(T.TAG_BASELINE))
    chosen, notes = choose(env, search, base, top)
    key = {T.TAG_ROLE: Role.CONFIRM, T.TAG_SEARCH_RUN: search.run_id}
    existing = Sweep.find(tracker, key)
    n = seeds if seeds is not None else confirm_seeds(existing)
    if n < 2:
        raise UserError(f"--seeds must be at least 2 to confirm (got {n})")
    trials = tracker.children(search.run_id)
    plan = until_clear_plan(chosen, search_seeds(trials), n, max_seeds)
    seed_values, new = fresh_seeds(baseline, trials, n)
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
    fresh_base = [s for s in T.baseline_seeds(baseline) if plan.eligible(s)]
    _say_plan(env, search, chosen, seed_values, plan, len(fresh_base))
    with sweep.guard():
        for s in new:
            out = add_seed(env, tracker.get_run(baseline.run_id), s)
            if not out.state.has_result:
                raise UserError(f"baseline seed {s} did not finish ({out.reason}): cannot confirm")
        outcomes = sweep.train(confirm_specs(chosen, seed_values), estimate=False)
        outcomes += add_seeds_until_clear(sweep, baseline.run_id, plan)
        table = sweep.close()
    return ConfirmResult(
        sweep.run_id,
        table,
        [o for o in outcomes if o.new],
        [r.name for r, _ in chosen],
        seed_values,
        notes,
    )


def _say_plan(env: RunEnv, search, chosen, seed_values, plan: UntilClear, fresh: int) -> None:
    """Before anything trains: the trials, the fresh seeds, how far seeds may be added, and
    at most how many runs that is (and about how long)."""
    names = ", ".join(r.name for r, _ in chosen)
    seeds = ", ".join(map(str, seed_values))
    more = (
        f", then fresh seeds one at a time for the rows still undecided, up to {plan.max_seeds} "
        "(--max-seeds)"
        if plan.max_seeds > len(seed_values)
        else ""
    )
    env.progress.say(
        f"confirming {len(chosen)} trial(s) of {search.name} on seeds {seeds} (none of them "
        f"trained by the search){more}: {names}"
    )
    # the rows' runs, and the baseline's new seeds beyond the `fresh` ones it has already
    runs = len(chosen) * plan.max_seeds + max(0, plan.max_seeds - fresh)
    say_estimate(env, chosen[0][1], runs if more else len(chosen) * len(seed_values),
                 bound="at most " if more else "")  # fmt: skip
