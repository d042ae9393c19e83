"""Seeds until clear: add seeds to the baseline and the undecided values, one per look,
until every row of the ablation has a verdict other than inconclusive, or --max-seeds.

The decision after each added seed is the table's own (`results.judging.judge` with the
sweep's sequential settings, over the values the looks cover): looks at n0, n0 + 1, ..., max_seeds seeds, each tested at its
Pocock-type alpha-spending level (`results/verdicts.py`), so looking after every seed keeps
false better/worse verdicts at or under alpha. Rows already decided get no more seeds.
"""

from __future__ import annotations

from collections.abc import Callable

from . import tracking as T
from .baseline import add_seed
from .results.judging import judge
from .results.settings import Settings
from .results.table import sweep_groups
from .results.verdicts import FINAL
from .runner import Outcome, Runner
from .tracking import RunState


def add_seeds_until_clear(
    runner: Runner,
    baseline: T.RunInfo,
    parent_id: str,
    knob: str,
    train: Callable[[str, int], Outcome],
    settings: Settings,
) -> tuple[list[Outcome], int]:
    """Train looks until clear (`train(value, seed)` trains one value's seed) for the values
    the sweep's looks cover (`settings.covers`); returns the runs trained and the number of
    looks taken. A look left incomplete by an interrupted run is completed first: the seed
    it needs is taken from the baseline if it has it, and only missing runs are trained."""
    tracker, progress = runner.tracker, runner.progress
    assert settings.sequential is not None
    n0, top = settings.sequential
    trained: list[Outcome] = []
    last = -1
    while True:
        base_group, groups = sweep_groups(tracker, tracker.get_run(parent_id))
        groups = [g for g in groups if settings.covered(g.value)]
        judged = judge(base_group, groups, settings)
        looks = judged.looks
        open_groups = [
            g
            for g, r in zip(groups, judged.rows, strict=True)
            if g.value in judged.sequential and r is not None and r.verdict not in FINAL
        ]
        used = n0 + looks - 1  # seeds the last complete look used
        names = ", ".join(f"{knob}={g.value}" for g in open_groups)
        if not looks:
            progress.warn("the first look is not complete (a run did not finish): no seed added")
            return trained, looks
        if not open_groups:
            progress.say(f"look {looks} ({used} seeds): every value has a verdict")
            return trained, looks
        if used >= top:
            progress.say(
                f"look {looks} ({used} seeds): reached --max-seeds {top}; still inconclusive: "
                + names
            )
            return trained, looks
        if looks == last:
            progress.warn(f"look {looks + 1} could not be completed: stopping --until-clear here")
            return trained, looks
        last = looks
        have = sorted(s for s in base_group.losses() if isinstance(s, int))
        seed = have[used] if len(have) > used else max(have) + 1
        missing = [g for g in open_groups if seed not in g.losses()]
        progress.say(
            f"look {looks} ({used} seeds): inconclusive: {names}; adding seed {seed} to the "
            "baseline and to them"
        )
        progress.sweep(int(seed not in have) + len(missing))
        batch = [] if seed in have else [add_seed(runner, tracker.get_run(baseline.run_id), seed)]
        if all(o.state is RunState.COMPLETE for o in batch):
            batch += [train(g.value, seed) for g in missing]
        trained += batch
        failed = [o for o in batch if o.state is not RunState.COMPLETE]
        if failed:
            progress.warn(
                f"{failed[0].name} did not complete ({failed[0].reason or failed[0].state}): "
                "stopping --until-clear here; its row keeps the verdict of the last full look"
            )
            return trained, looks
