"""Seeds until clear: add seeds to the baseline and the undecided values, one per look,
until every row of the ablation has a verdict other than inconclusive, or --max-seeds.

The decision after each added seed is the table's own (`results.table.judge` with the
sweep's sequential settings): looks at n0, n0 + 1, ..., max_seeds seeds, each tested at its
Pocock-type alpha-spending level (`results/verdicts.py`), so looking after every seed keeps
false better/worse verdicts at or under alpha. Rows already decided get no more seeds.
"""

from __future__ import annotations

from collections.abc import Callable

from . import tracking as T
from .baseline import add_seed
from .results.table import Settings, judge, sweep_groups
from .results.verdicts import FINAL
from .runner import Outcome, Runner
from .tracking import RunState


def add_seeds_until_clear(
    runner: Runner,
    baseline: T.RunInfo,
    parent_id: str,
    knob: str,
    values: list[str],
    train: Callable[[str, int], Outcome],
    settings: Settings,
) -> tuple[list[Outcome], int]:
    """Train looks until clear (`train(value, seed)` trains one value's seed); returns the
    runs trained and the number of looks taken."""
    tracker, progress = runner.tracker, runner.progress
    assert settings.sequential is not None
    n0, top = settings.sequential
    trained: list[Outcome] = []
    while True:
        base_group, groups = sweep_groups(tracker, tracker.get_run(parent_id))
        groups = [g for g in groups if g.value in values]
        rows = judge(base_group, groups, settings)
        seeds = sorted(base_group.losses())
        look = len(seeds) - n0 + 1
        open_values = [
            g.value
            for g, r in zip(groups, rows, strict=True)
            if r is not None and r.verdict not in FINAL
        ]
        if not open_values:
            progress.say(f"look {look} ({len(seeds)} seeds): every value has a verdict")
            return trained, look
        if len(seeds) >= top:
            progress.say(
                f"look {look} ({len(seeds)} seeds): reached --max-seeds {top}; still inconclusive: "
                + ", ".join(f"{knob}={v}" for v in open_values)
            )
            return trained, look
        seed = max(s for s in seeds if isinstance(s, int)) + 1
        progress.say(
            f"look {look} ({len(seeds)} seeds): inconclusive: "
            + ", ".join(f"{knob}={v}" for v in open_values)
            + f"; adding seed {seed} to the baseline and to them"
        )
        progress.sweep(1 + len(open_values))
        out = add_seed(runner, tracker.get_run(baseline.run_id), seed)
        trained.append(out)
        trained += [train(value, seed) for value in open_values]
        failed = [o for o in trained[-1 - len(open_values) :] if o.state is not RunState.COMPLETE]
        if failed:
            progress.warn(
                f"{failed[0].name} did not complete ({failed[0].reason or failed[0].state}): "
                "stopping --until-clear here; its row keeps the verdict of the last full look"
            )
            return trained, look
