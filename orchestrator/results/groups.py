"""The runs of a sweep grouped by configuration (the baseline's and one group per value), which
of them count, and the baseline's recorded history.

A run's seed is its `sweep.seed` tag, and a (configuration, seed) counts once whatever its
run was named: the first recorded run of that seed that counts. What counts (`seed_loss`):

- a run with a result (complete, or reused: a link run carries its source's numbers): its
  best val loss, NaN when it has no finite one (a diverged seed);
- a run that FAILED at a training step (diverged: `sweep.failed_step`): NaN, a diverged seed
  that the verdicts count (`anytime.py`): never dropped;
- not counted: a KILLED (interrupted) run, which resume trains again; a run still RUNNING;
  a run that FAILED without a failed step (a crash of the machine or the store, not of the
  configuration), which resume trains again; a PRUNED search trial (stopped early by the
  pruner: no best val loss to compare, but no sign of divergence either, so its row stays a
  single-seed candidate). Ablations and confirmations never prune (their specs have no
  pruner), so a pruned seed cannot occur in them.

History: the paired differences (variant minus baseline, seed by seed) of the rows of other
finished ablations and confirmations against the same baseline, begun before this sweep;
`anytime.py` pools the noise scale with them where its check allows. The sweeps a table used
are recorded on its parent at its first table (`sweep.history`) and read back from then on,
so the history of a sweep does not change with sweeps begun later. Each sweep records its
rows' losses by seed with its table (`sweep.seed_losses`), so reading the history is the one
query that finds those sweeps (a sweep without the tag: one more for its runs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .. import tracking as T
from ..errors import UserError
from ..tracking import Role, RunInfo, RunState

SEARCH = "search"  # the knob column of a search's rows
HISTORY_SWEEPS = 20  # at most this many earlier sweeps (the most recent) form the history

Curve = list[tuple[int, float]]


def seed_loss(run: RunInfo) -> float | None:
    """What a run counts as: its best val loss, NaN for a diverged seed, None if it does not
    count (see the module docstring)."""
    if run.state.has_result:
        x = run.metrics.get("best_val_loss", math.nan)
        return x if math.isfinite(x) else math.nan
    if run.state is RunState.FAILED and T.TAG_FAILED_STEP in run.tags:
        return math.nan
    return None


@dataclass
class Group:
    """The runs (seeds) of one configuration."""

    knob: str
    value: str
    runs: list[RunInfo] = field(default_factory=list)
    is_baseline: bool = False
    curves: dict[int, Curve] = field(default_factory=dict)  # val loss by step, per seed

    def counted(self) -> dict[int | str, RunInfo]:
        """The run that counts for each seed (the first recorded that does)."""
        out: dict[int | str, RunInfo] = {}
        for r in sorted(self.runs, key=lambda r: (r.start_time, r.run_id)):
            if seed_loss(r) is not None:
                out.setdefault(seed_of(r), r)
        return out

    def losses(self) -> dict[int | str, float]:
        """Every counted seed's best val loss; NaN where it diverged."""
        return {s: seed_loss(r) for s, r in self.counted().items()}  # type: ignore[misc]

    def done(self) -> list[RunInfo]:
        """The counted runs with a finite best val loss."""
        return [r for r in self.counted().values() if math.isfinite(seed_loss(r) or math.nan)]

    def pruned(self) -> list[RunInfo]:
        return [r for r in self.runs if r.state is RunState.PRUNED]

    def reused_from(self) -> list[str]:
        """The names of the runs this group's reused runs link to."""
        return [
            r.tags.get(T.TAG_REUSED_NAME, "?") for r in self.done() if r.state is RunState.REUSED
        ]


def seed_of(run: RunInfo) -> int | str:
    raw = run.tags.get(T.TAG_SEED, run.params.get("seed"))
    try:
        return int(raw)
    except (TypeError, ValueError):
        return run.run_id  # no seed recorded: a run of its own


def paired(losses: dict[int | str, float]) -> dict[int, float]:
    """The seeds that can pair (an integer seed), with their losses."""
    return {s: x for s, x in losses.items() if isinstance(s, int)}


def sort_key(value: str):
    """Numeric values in order, then the others by name."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def baseline_group(tracker: T.Tracker, parent: RunInfo, knob: str = SEARCH) -> Group:
    """The baseline a sweep names: its seed runs (a diverged one too), or its one run."""
    baseline_id = parent.tags.get(T.TAG_BASELINE)
    if not baseline_id:
        raise UserError(f"sweep {parent.run_id} does not name its baseline (tag {T.TAG_BASELINE})")
    base_run = tracker.get_run(baseline_id)
    runs = tracker.children(base_run.run_id) if T.is_seeded(base_run) else [base_run]
    return Group(knob, parent.tags.get(T.TAG_BASELINE_VALUE, "baseline"), runs, True)


def sweep_groups(tracker: T.Tracker, parent: RunInfo) -> tuple[Group, list[Group]]:
    """The baseline's group (its members) and one group per value of the sweep."""
    knob = parent.tags.get(T.TAG_KNOB, SEARCH)
    return baseline_group(tracker, parent, knob), value_groups(tracker, parent, knob)


def value_groups(tracker: T.Tracker, parent: RunInfo, knob: str = SEARCH) -> list[Group]:
    groups: dict[str, Group] = {}
    for run in tracker.children(parent.run_id):
        value = run.tags.get(T.TAG_VALUE, run.name)
        groups.setdefault(value, Group(knob, value)).runs.append(run)
    ordered = list(groups.values())
    if knob != SEARCH:
        ordered.sort(key=lambda g: sort_key(g.value))
    return ordered


def read_curves(tracker: T.Tracker, group: Group) -> dict[int, Curve]:
    """Each counted, finite seed's val loss curve (finite evals), by seed."""
    out: dict[int, Curve] = {}
    for seed, r in group.counted().items():
        if not isinstance(seed, int) or not math.isfinite(seed_loss(r) or math.nan):
            continue
        by_step = {
            step: v
            for step, _, v in sorted(tracker.metric_history(r.run_id, "val_loss"))
            if math.isfinite(v)
        }
        out[seed] = sorted(by_step.items())
    return out


def history_sweeps(tracker: T.Tracker, parent: RunInfo) -> list[RunInfo]:
    """The earlier sweeps whose rows form this sweep's history (one store query): those its
    first table recorded, else the finished ablations and confirmations against the same
    baseline begun before it (the HISTORY_SWEEPS most recent)."""
    baseline_id = parent.tags.get(T.TAG_BASELINE, "")
    recorded = parent.tags.get(T.TAG_HISTORY)
    runs = tracker.search(f"tags.`{T.TAG_BASELINE}` = '{baseline_id}'")
    if recorded is not None:
        ids = set(recorded.split(",")) - {""}
        return [r for r in runs if r.run_id in ids]
    earlier = [
        r
        for r in runs
        if r.tags.get(T.TAG_ROLE) in (Role.ABLATION, Role.CONFIRM)
        and r.run_id != parent.run_id
        and (r.start_time, r.run_id) < (parent.start_time, parent.run_id)
        and r.state is not RunState.RUNNING
    ]
    return sorted(earlier, key=lambda r: (r.start_time, r.run_id))[-HISTORY_SWEEPS:]


def seed_losses(groups: list[Group]) -> dict[str, dict[str, float]]:
    """The rows' finite best val losses by seed, as a sweep records them for later sweeps
    (`sweep.seed_losses`)."""
    return {
        g.value: {str(s): x for s, x in paired(g.losses()).items() if math.isfinite(x)}
        for g in groups
    }


def _recorded_losses(sweep: RunInfo) -> list[dict[int, float]] | None:
    raw = sweep.tags.get(T.TAG_SEED_LOSSES)
    if raw is None:
        return None
    try:
        rows = json.loads(raw)
        return [{int(s): float(x) for s, x in row.items()} for row in rows.values()]
    except (ValueError, TypeError, AttributeError):
        return None  # not what this version writes: read the runs instead


def history_of(
    tracker: T.Tracker, sweeps: list[RunInfo], base: dict[int, float]
) -> list[dict[int, float]]:
    """The paired differences of those sweeps' rows against the baseline's losses `base`,
    one mapping seed -> difference per row with two or more: from the losses each sweep
    recorded with its table (no query), else from its runs (one query per sweep)."""
    out = []
    for sweep in sweeps:
        rows = _recorded_losses(sweep)
        if rows is None:
            rows = [paired(g.losses()) for g in value_groups(tracker, sweep)]
        for losses in rows:
            diffs = {
                s: x - base[s]
                for s, x in losses.items()
                if s in base and math.isfinite(x) and math.isfinite(base[s])
            }
            if len(diffs) >= 2:
                out.append(diffs)
    return out
