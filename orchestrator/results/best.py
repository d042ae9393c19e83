"""The best run of a store or sweep, and the best variant of a sweep as a ready-to-run command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import tracking as T
from ..errors import UserError
from ..tracking import Role, RunState
from .verdicts import Verdict

if TYPE_CHECKING:
    from .table import Table


def has_checkpoint(run: T.RunInfo) -> bool:
    """Runs that trained a model (a seeded baseline's parent does not: its children did)."""
    try:
        role = Role(run.tags.get(T.TAG_ROLE, ""))
    except ValueError:
        return False
    if role is Role.BASELINE and T.is_seeded(run):
        return False
    return role.trains


def best_run(tracker: T.Tracker, sweep_id: str | None = None) -> T.RunInfo:
    """The trained run with the lowest best val loss (of a sweep: its children, a reused
    child standing for the run it links to, which holds the checkpoint)."""
    if sweep_id:
        tracker.get_run(sweep_id)
        runs = [T.source_of(tracker, r) for r in tracker.children(sweep_id)]
    else:
        runs = tracker.search(f"attributes.status = '{T.FINISHED_STATUS}'")
    done = [
        r
        for r in runs
        if r.state is RunState.COMPLETE and "best_val_loss" in r.metrics and has_checkpoint(r)
    ]
    if not done:
        where = f"sweep {sweep_id}" if sweep_id else f"experiment '{tracker.experiment_name}'"
        raise UserError(f"no finished run in {where} yet: run `sweep baseline` first")
    return min(done, key=lambda r: r.metrics["best_val_loss"])


@dataclass
class Best:
    """The best variant of a sweep against its baseline, with a command to train it."""

    value: str
    mean: float
    base_mean: float
    run: T.RunInfo | None
    verdict: Verdict = Verdict.NO_RESULT
    delta: str = ""  # the delta with its interval, as the table shows it
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (baseline, best)
    command: str = ""  # only for a `better` verdict: nothing else is recommended

    @property
    def beats_baseline(self) -> bool:
        """Only a `better` verdict beats the baseline: a lower mean alone may be seed noise."""
        return self.verdict is Verdict.BETTER

    @property
    def is_baseline_config(self) -> bool:
        """Its run trained the baseline's own configuration (a search's trial 0, or a grid
        point on the baseline's values): nothing to confirm or adopt."""
        return self.run is not None and not self.changes

    def summary(self) -> str:
        """One line for a report's top: the verdict of the sweep's best row."""
        if self.run is None:
            return f"{self.value}: {self.verdict} (nothing finished)"
        own = " (the baseline's own configuration)" if self.is_baseline_config else ""
        return f"{self.verdict}: {self.value}{own}, {self.delta or 'no delta'} best val loss"

    def advice(self, sweep: T.RunInfo) -> str:
        """What to do, in one sentence, from the verdict (never more than it claims)."""
        changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in self.changes.items()) or "none"
        if self.is_baseline_config and not self.beats_baseline:
            return (
                f"Lowest val loss: {self.value}, the baseline's own configuration: no variant "
                "beat it; keep the baseline."
            )
        if self.beats_baseline:
            return (
                f"Best variant: {self.value}, better than the baseline ({self.delta} best val "
                f"loss). Changes against the baseline: {changed}. Train it as the new baseline with:"
            )
        if self.verdict is Verdict.SINGLE_SEED and sweep.tags.get(T.TAG_ROLE) == Role.SEARCH:
            return (
                f"Lowest val loss: {self.value} ({self.delta}), a single-seed draw from many "
                "trials: a candidate, not a result. Confirm it on seeds the search never trained: "
                f"`sweep confirm --sweep {sweep.run_id}`."
            )
        return (
            f"No variant is better than the baseline (lowest val loss: {self.value}, "
            f"{self.delta}, verdict {self.verdict}): keep the baseline."
        )


def _norm(key: str, raw) -> str:
    from ..config import coerce

    try:
        v = coerce(key, raw)
    except Exception:
        return str(raw)
    return "None" if v is None else str(v)


def config_changes(base: dict[str, str], best: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Config keys whose value differs between two runs' params (seed, data and where it ran
    ignored: they are not what a person changes)."""
    from ..config import FIXED_KEYS, config_params

    a, b = config_params(base), config_params(best)
    return {
        k: (a.get(k, ""), b[k])
        for k in b
        if k not in FIXED_KEYS and _norm(k, a.get(k)) != _norm(k, b[k])
    }


def ready_command(base: dict[str, str], changes: dict[str, tuple[str, str]], seeds: int = 1) -> str:
    """`sweep baseline ...` that trains the baseline's recorded config with `changes` applied."""
    from ..config import baseline_command, config_params, from_flat

    cfg = from_flat({**config_params(base), **{k: new for k, (_, new) in changes.items()}})
    return baseline_command(cfg, seeds)


def find_best(
    tracker: T.Tracker, parent: T.RunInfo, table: Table, base_run: T.RunInfo
) -> Best | None:
    """The variant to recommend: the lowest `better` row; else the lowest row, as a note."""
    from .export import interval_text

    row = table.lowest((Verdict.BETTER,)) or table.lowest()
    if row is None:
        return None
    ids = set(row.run_ids.split())
    runs = [
        T.source_of(tracker, r)
        for r in tracker.children(parent.run_id)
        if r.run_id in ids and T.has_result(r)
    ]
    runs = [r for r in runs if "best_val_loss" in r.metrics]
    run = min(runs, key=lambda r: r.metrics["best_val_loss"]) if runs else None
    delta = interval_text(row.delta, row.delta_ci_low, row.delta_ci_high)
    best = Best(named(row), row.best_val_loss, table.baseline_mean, run, row.verdict, delta)
    if run is not None:
        best.changes = config_changes(base_run.params, run.params)
        if best.beats_baseline:
            seeds = int(base_run.tags.get(T.TAG_SEEDS, "1") or 1)
            best.command = ready_command(base_run.params, best.changes, seeds)
    return best


def named(row) -> str:
    """A row's value as people read it: `grad_accum_steps=2`, not `2` (a search trial's
    `trial-3: dropout=0.1 ...` names its keys already)."""
    value = str(row.value)
    if not row.knob or "=" in value or value.startswith("trial-"):
        return value
    return f"{row.knob}={value}"


def best_member(tracker: T.Tracker, base_run: T.RunInfo) -> T.RunInfo:
    members = [T.source_of(tracker, r) for r in T.baseline_members(tracker, base_run)]
    members = [r for r in members if "best_val_loss" in r.metrics]
    return min(members, key=lambda r: r.metrics["best_val_loss"]) if members else base_run


def standing(tracker: T.Tracker, run: T.RunInfo) -> str:
    """What a best run's number means: the baseline, a candidate, or its row's verdict."""
    from .export import interval_text
    from .table import sweep_table

    role = run.tags.get(T.TAG_ROLE)
    if role in (Role.BASELINE, Role.BASELINE_SEED):
        return "it is the baseline: no variant has a lower best val loss"
    parent_id = run.parent_id
    if parent_id is None:
        return ""
    if role == Role.SEARCH_TRIAL and baseline_config(tracker, run):
        return "the baseline's own configuration (a search's trial 0): keep the baseline"
    if role == Role.SEARCH_TRIAL:
        return (
            "a single-seed search trial: a candidate, not a result; confirm it on seeds the "
            f"search never trained: sweep confirm --sweep {parent_id}"
        )
    row = sweep_table(tracker, tracker.get_run(parent_id)).row(run.tags.get(T.TAG_VALUE, run.name))
    if row is None:
        return ""
    delta = interval_text(row.delta, row.delta_ci_low, row.delta_ci_high)
    if row.verdict is Verdict.BETTER:
        return f"verdict: better than the baseline ({delta} best val loss)"
    return f"verdict: {row.label} ({delta}): not shown to beat the baseline; keep it unless that changes"


def baseline_config(tracker: T.Tracker, run: T.RunInfo) -> bool:
    """Whether a sweep's run trained its baseline's own configuration (nothing to confirm)."""
    parent = tracker.get_run(run.parent_id) if run.parent_id else None
    base_id = parent.tags.get(T.TAG_BASELINE) if parent else None
    if not base_id:
        return False
    return not config_changes(tracker.get_run(base_id).params, run.params)
