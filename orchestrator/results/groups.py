"""The runs of a sweep grouped by configuration: the baseline's and one group per value.

A run's seed is its `sweep.seed` tag, and a (configuration, seed) counts once whatever its
run was named. A run reused from another sweep (state `reused`) counts like the run it
links to: its numbers are copied onto it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import tracking as T
from ..errors import UserError
from ..tracking import RunInfo
from . import compute

SEARCH = "search"  # the knob column of a search's rows


@dataclass
class Group:
    """The runs (seeds) of one configuration."""

    knob: str
    value: str
    runs: list[RunInfo] = field(default_factory=list)
    is_baseline: bool = False
    curve: list[tuple[int, float]] = field(default_factory=list)  # mean val loss by step

    def done(self) -> list[RunInfo]:
        """Runs with a result (finished, or reused), one per seed (the first recorded wins)."""
        out: dict[int | str, RunInfo] = {}
        for r in sorted(self.runs, key=lambda r: r.start_time):
            if T.has_result(r):
                out.setdefault(seed_of(r), r)
        return list(out.values())

    def losses(self) -> dict[int | str, float]:
        return {seed_of(r): r.metrics["best_val_loss"] for r in self.done()}

    def reused_from(self) -> list[str]:
        """The names of the runs this group's reused runs link to."""
        return [
            r.tags.get(T.TAG_REUSED_NAME, "?") for r in self.done() if r.state is T.RunState.REUSED
        ]


def seed_of(run: RunInfo) -> int | str:
    raw = run.tags.get(T.TAG_SEED, run.params.get("seed"))
    try:
        return int(raw)
    except (TypeError, ValueError):
        return run.run_id  # no seed recorded: a run of its own


def sort_key(value: str):
    """Numeric values in order, then the others by name."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def sweep_groups(tracker: T.Tracker, parent: RunInfo) -> tuple[Group, list[Group]]:
    """The baseline's group (its members) and one group per value of the sweep."""
    knob = parent.tags.get(T.TAG_KNOB, SEARCH)
    baseline_id = parent.tags.get(T.TAG_BASELINE)
    if not baseline_id:
        raise UserError(f"sweep {parent.run_id} does not name its baseline (tag {T.TAG_BASELINE})")
    base_run = tracker.get_run(baseline_id)
    baseline = Group(
        knob,
        parent.tags.get(T.TAG_BASELINE_VALUE, "baseline"),
        T.baseline_members(tracker, base_run),
        True,
    )
    return baseline, value_groups(tracker, parent, knob)


def value_groups(tracker: T.Tracker, parent: RunInfo, knob: str = SEARCH) -> list[Group]:
    groups: dict[str, Group] = {}
    for run in tracker.children(parent.run_id):
        value = run.tags.get(T.TAG_VALUE, run.name)
        groups.setdefault(value, Group(knob, value)).runs.append(run)
    ordered = list(groups.values())
    if knob != SEARCH:
        ordered.sort(key=lambda g: sort_key(g.value))
    return ordered


def read_curve(tracker: T.Tracker, group: Group) -> list[tuple[int, float]]:
    """The mean val loss curve across the group's seeds, at the steps every seed evaluated."""
    curves = []
    for r in group.done():
        by_step: dict[int, float] = {}
        for step, _, value in sorted(tracker.metric_history(r.run_id, "val_loss")):
            if math.isfinite(value):
                by_step[step] = value
        curves.append(sorted(by_step.items()))
    return compute.mean_curve(curves)
