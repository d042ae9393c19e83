"""Seeds until clear: add seeds to the baseline and the undecided values, one per look,
until every row of the ablation has a verdict other than inconclusive, or --max-seeds.

The decision after each added seed is the table's own (`results.judging.judge` with the
sweep's sequential settings, over the values the looks cover): looks at n0, n0 + 1, ...,
max_seeds seeds, each tested at its Pocock-type alpha-spending level (`results/verdicts.py`),
so looking after every seed keeps false better/worse verdicts at or under alpha. Rows
already decided get no more seeds.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import tracking as T
from ..execution.spec import Outcome, RunSpec
from ..results.groups import sweep_groups
from ..results.judging import judge
from ..results.settings import Settings
from ..results.verdicts import FINAL
from .baseline import add_seed
from .sweep import Sweep


def add_seeds_until_clear(
    sweep: Sweep,
    baseline: T.RunInfo,
    knob: str,
    spec: Callable[[str, int], RunSpec],
    settings: Settings,
) -> tuple[list[Outcome], int]:
    """Train looks until clear (`spec(value, seed)`: one value's run at a seed) for the values
    the sweep's looks cover (`settings.covers`); returns the runs trained and the number of
    looks taken. A look left incomplete by an interrupted run is completed first: the seed
    it needs is taken from the baseline if it has it, and only missing runs are trained."""
    tracker, progress = sweep.tracker, sweep.env.progress
    assert settings.sequential is not None
    n0, top = settings.sequential
    trained: list[Outcome] = []
    last = -1
    while True:
        base_group, groups = sweep_groups(tracker, tracker.get_run(sweep.run_id))
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
        stop = _stop(looks, last, used, top, names)
        if stop is not None:
            (progress.warn if stop.startswith("!") else progress.say)(stop.lstrip("!"))
            return trained, looks
        last = looks
        have = sorted(s for s in base_group.losses() if isinstance(s, int))
        seed = have[used] if len(have) > used else max(have) + 1
        missing = [g for g in open_groups if seed not in g.losses()]
        progress.say(
            f"look {looks} ({used} seeds): inconclusive: {names}; adding seed {seed} to the "
            "baseline and to them"
        )
        batch = (
            [] if seed in have else [add_seed(sweep.env, tracker.get_run(baseline.run_id), seed)]
        )
        if all(o.state.has_result for o in batch):
            batch += sweep.train([spec(g.value, seed) for g in missing], estimate=False)
        trained += batch
        failed = [o for o in batch if not o.state.has_result]
        if failed:
            progress.warn(
                f"{failed[0].name} did not complete ({failed[0].reason or failed[0].state}): "
                "stopping --until-clear here; its row keeps the verdict of the last full look"
            )
            return trained, looks


def _stop(looks: int, last: int, used: int, top: int, names: str) -> str | None:
    """Why the looks end here (a leading '!' for a warning), or None to add a seed."""
    if not looks:
        return "!the first look is not complete (a run did not finish): no seed added"
    if not names:
        return f"look {looks} ({used} seeds): every value has a verdict"
    if used >= top:
        return (
            f"look {looks} ({used} seeds): reached --max-seeds {top}; still inconclusive: {names}"
        )
    if looks == last:
        return f"!look {looks + 1} could not be completed: stopping --until-clear here"
    return None
