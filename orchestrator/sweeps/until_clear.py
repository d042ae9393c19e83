"""Seeds until clear: add one seed at a time to the baseline and to the undecided rows, until
every row is decided or has --max-seeds seeds.

No schedule is fixed in advance and no look is recorded: the table's verdicts
(`results/anytime.py`) hold at every look however many seeds are added, so the decision
after each added seed is simply the sweep's table. A row is decided when it reads better,
worse, equivalent or unstable (a diverged seed is counted, and more seeds cannot undo it);
inconclusive and single-seed rows get the next seed. A row's next seed is the first of the
baseline's seeds it may use (`eligible`: a confirmation uses only seeds its search never
trained) that it lacks; when it has them all, the baseline gains a new seed first. A run
that neither finishes nor diverges (a crash, a duplicate) stops the loop with a warning:
the table keeps what was counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import tracking as T
from ..execution.estimate import say_estimate
from ..execution.spec import Outcome, RunSpec
from ..results.groups import seed_loss
from ..results.verdicts import Verdict
from .baseline import add_seed
from .sweep import Sweep

OPEN = (Verdict.INCONCLUSIVE, Verdict.SINGLE_SEED)


@dataclass
class UntilClear:
    """What to add seeds to: the rows (values), one run of a value at a seed, the cap, the
    seeds it may use and the seeds a new baseline seed must not be (a search's)."""

    values: list[str]
    spec: Callable[[str, int], RunSpec]
    max_seeds: int
    avoid: set[int] = field(default_factory=set)
    label: Callable[[str], str] = str  # how progress names a row
    estimate: bool = True  # say at most how many runs before the first added seed

    def eligible(self, seed: int) -> bool:
        return seed not in self.avoid


def add_seeds_until_clear(sweep: Sweep, baseline_id: str, plan: UntilClear) -> list[Outcome]:
    """Add seeds until every row of `plan.values` is decided or has `plan.max_seeds` seeds;
    returns the runs trained (or linked) on the way."""
    tracker, progress = sweep.tracker, sweep.env.progress
    trained: list[Outcome] = []
    estimated = False
    while True:
        table = sweep.table()
        rows = [r for v in plan.values if (r := table.row(v)) is not None]
        have = {r.value: _seeds(table.groups[r.value]) for r in rows}
        undecided = [r for r in rows if r.verdict in OPEN]
        todo = [r for r in undecided if len(have[r.value]) < plan.max_seeds]
        if not undecided:
            decided = ", ".join(f"{plan.label(r.value)}: {r.label}" for r in rows)
            progress.say(f"every row is decided ({decided})")
            return trained
        if not todo:
            names = ", ".join(plan.label(r.value) for r in undecided)
            progress.say(f"reached --max-seeds {plan.max_seeds}; still undecided: {names}")
            return trained
        base = tracker.get_run(baseline_id)
        usable = [s for s in T.baseline_seeds(base) if plan.eligible(s)]
        if plan.estimate and not estimated:
            _estimate(sweep, plan, todo, have, usable)
            estimated = True
        needs = {r.value: next((s for s in usable if s not in have[r.value]), None) for r in todo}
        if None in needs.values():
            seed = max([*T.baseline_seeds(base), *plan.avoid]) + 1
            progress.say(f"adding seed {seed} to the baseline")
            out = add_seed(sweep.env, base, seed)
            trained.append(out)
            if not out.state.has_result:
                progress.warn(f"baseline seed {seed} did not finish ({out.reason}): stopping")
                return trained
            needs = {v: seed if s is None else s for v, s in needs.items()}
        names = ", ".join(f"{plan.label(v)} (seed {s})" for v, s in needs.items())
        progress.say(f"undecided: adding a seed to {names}")
        batch = sweep.train([plan.spec(v, s) for v, s in needs.items()], estimate=False)
        trained += batch
        stuck = [o for o in batch if seed_loss(tracker.get_run(o.run_id)) is None]
        if stuck:
            o = stuck[0]
            progress.warn(
                f"{o.name} neither finished nor diverged ({o.reason or o.state}): stopping "
                "here; the table counts what finished"
            )
            return trained


def _seeds(group) -> list[int]:
    return [s for s in group.counted() if isinstance(s, int)]


def _estimate(sweep: Sweep, plan: UntilClear, todo, have, usable) -> None:
    """Before the first added seed: at most how many runs, and about how long."""
    runs = sum(plan.max_seeds - len(have[r.value]) for r in todo)
    runs += max(0, plan.max_seeds - len(usable))
    first = todo[0].value
    cfg = plan.spec(first, max(have[first], default=0) + 1).cfg
    sweep.env.progress.say(
        f"adding seeds until every row is decided, up to {plan.max_seeds} seeds a row: at most "
        f"{runs} more run(s)"
    )
    say_estimate(sweep.env, cfg, runs, bound="at most ")
