"""The comparison table: one row per configuration against the baseline, with verdicts.

`Table` is what every command builds once and hands on: its rows are typed (`TableRow`,
each with a `Verdict`), it carries the settings it was decided with, the sentence that says
what its verdicts mean and the level of its intervals; `.to_frame()` is the pandas view the
exports write. Rows come from the runs in the store (`groups.py`), are decided by
`judging.py` (paired t; Welch where seeds differ; Holm across rows; the replayed looks of
`--until-clear`) and carry their training FLOPs and compute to target (`compute.py`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from .. import tracking as T
from ..tracking import RunInfo
from . import compute
from .groups import Group, read_curve, sweep_groups
from .judging import Judged, describe, judge
from .settings import Settings, ci_label
from .verdicts import Verdict

if TYPE_CHECKING:
    import pandas as pd

NAN = math.nan


@dataclass(frozen=True)
class TableRow:
    """One configuration against the baseline. `verdict` is the claim; `label` is what the
    table prints for it (with the reason when nothing finished); `note` says where the
    numbers come from when they were reused from another sweep's runs."""

    knob: str
    value: str
    seeds: int
    best_val_loss: float
    best_val_loss_std: float
    delta: float
    delta_ci_low: float
    delta_ci_high: float
    delta_pct: float
    pairing: str
    p_value: float
    p_adjusted: float
    verdict: Verdict
    label: str
    seeds_needed: float
    best_val_ppl: float
    final_train_loss: float
    train_val_gap: float
    best_step: float
    tokens_per_s: float
    wall_s: float
    params: float
    train_flops: float
    compute_to_target: float
    state: str
    note: str
    run_ids: str

    @property
    def is_baseline(self) -> bool:
        return self.verdict is Verdict.BASELINE


COLUMNS = [f.name for f in fields(TableRow) if f.name != "label"]


@dataclass
class Table:
    """A sweep's rows (the baseline's first), how they were decided, and what they mean."""

    rows: list[TableRow]
    settings: Settings
    legend: str
    ci_label: str
    baseline_mean: float = NAN
    sweep: str = ""
    sweep_run_id: str = ""
    judged: Judged | None = field(default=None, repr=False)

    @property
    def variants(self) -> list[TableRow]:
        return [r for r in self.rows if not r.is_baseline]

    @property
    def knob(self) -> str:
        return self.rows[0].knob if self.rows else ""

    def row(self, value: str) -> TableRow | None:
        return next((r for r in self.rows if r.value == value), None)

    def lowest(self, verdicts: tuple[Verdict, ...] | None = None) -> TableRow | None:
        """The variant row with the lowest best val loss (among `verdicts` if given)."""
        rows = [
            r
            for r in self.variants
            if math.isfinite(r.best_val_loss) and (verdicts is None or r.verdict in verdicts)
        ]
        return min(rows, key=lambda r: r.best_val_loss, default=None)

    def counts(self) -> dict[str, int]:
        """How many variant rows read each verdict label."""
        out: dict[str, int] = {}
        for r in self.variants:
            out[r.label] = out.get(r.label, 0) + 1
        return out

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (the `verdict` column holds what the table prints)."""
        import pandas as pd

        records = []
        for r in self.rows:
            rec = asdict(r)
            rec["verdict"] = rec.pop("label")
            records.append(rec)
        return pd.DataFrame(records, columns=COLUMNS)


def _mean(runs: list[RunInfo], key: str) -> float:
    vals = [r.metrics[key] for r in runs if key in r.metrics and math.isfinite(r.metrics[key])]
    return statistics.fmean(vals) if vals else NAN


def _flops(runs: list[RunInfo], fn) -> float:
    vals = [v for v in (fn(r) for r in runs) if math.isfinite(v)]
    return statistics.fmean(vals) if vals else NAN


def compute_to_target(base: Group, group: Group) -> float:
    """Training FLOPs the variant needed to first reach the baseline's best (mean-curve) val
    loss, over what the baseline needed; NaN when it never did or nothing was recorded."""
    if not base.curve or not group.curve:
        return NAN
    target = min(v for _, v in base.curve)
    base_step = compute.first_reaching(base.curve, target)
    step = compute.first_reaching(group.curve, target)
    base_fps = _flops(base.done(), compute.flops_per_step)
    fps = _flops(group.done(), compute.flops_per_step)
    if step is None or not base_step or not (base_fps > 0 and fps > 0):
        return NAN
    return (fps * step) / (base_fps * base_step)


def _no_result(g: Group) -> str:
    """What a row without a finished run prints: its states, and the first reason."""
    states = sorted({str(r.state) for r in g.runs})
    word = "/".join(states) or "no runs"
    reasons = sorted({r.tags.get(T.TAG_REASON, "") for r in g.runs} - {""})
    return word + (f": {reasons[0]}" if reasons else "")


def _row(g: Group, decided, baseline: Group, base_mean: float) -> TableRow:
    ok = g.done()
    losses = [r.metrics["best_val_loss"] for r in ok]
    c = decided.comparison if decided is not None else None
    if g.is_baseline:
        verdict, label = Verdict.BASELINE, str(Verdict.BASELINE)
    elif decided is not None:
        verdict, label = decided.verdict, str(decided.verdict)
    else:
        verdict, label = Verdict.NO_RESULT, _no_result(g)
    delta = 0.0 if g.is_baseline and ok else (c.delta if c is not None else NAN)
    reused = sorted(set(g.reused_from()))
    return TableRow(
        knob=g.knob,
        value=g.value,
        seeds=len(ok),
        best_val_loss=statistics.fmean(losses) if losses else NAN,
        best_val_loss_std=statistics.stdev(losses) if len(losses) > 1 else NAN,
        delta=delta,
        delta_ci_low=decided.ci_low if decided is not None else NAN,
        delta_ci_high=decided.ci_high if decided is not None else NAN,
        delta_pct=100.0 * delta / base_mean if base_mean else NAN,
        pairing=c.pairing if c is not None else "",
        p_value=c.p_value if c is not None else NAN,
        p_adjusted=decided.p_adjusted if decided is not None else NAN,
        verdict=verdict,
        label=label,
        seeds_needed=float(decided.seeds_needed)
        if decided is not None and decided.seeds_needed
        else NAN,
        best_val_ppl=_mean(ok, "best_val_ppl"),
        final_train_loss=_mean(ok, "final_train_loss"),
        train_val_gap=_mean(ok, "final_val_loss") - _mean(ok, "final_train_loss"),
        best_step=_mean(ok, "best_step"),
        tokens_per_s=_mean(ok, "train_tokens_per_s"),
        wall_s=_mean(ok, "wall_s"),
        params=_mean(ok, "params"),
        train_flops=_flops(ok, compute.train_flops),
        compute_to_target=1.0
        if g.is_baseline and baseline.curve
        else compute_to_target(baseline, g),
        state="/".join(sorted({str(r.state) for r in g.runs})),
        note=("reused from " + ", ".join(reused)) if reused else "",
        run_ids=" ".join(r.run_id for r in g.runs),
    )


def build_table(baseline: Group, groups: list[Group], settings: Settings | None = None) -> Table:
    settings = settings or Settings()
    base_runs = baseline.done()
    base_mean = _mean(base_runs, "best_val_loss")
    judged = judge(baseline, groups, settings) if base_runs else Judged([None] * len(groups))
    rows = [_row(baseline, None, baseline, base_mean)]
    rows += [_row(g, d, baseline, base_mean) for g, d in zip(groups, judged.rows, strict=True)]
    levels = {r.level for r in judged.rows if r is not None and not math.isnan(r.ci_low)}
    # the header names the interval's level; rows of --until-clear each have their look's
    one = levels.pop() if len(levels) == 1 else settings.alpha if not levels else None
    return Table(
        rows=rows,
        settings=settings,
        legend=describe(settings, judged, baseline.knob),
        ci_label=ci_label(one) if one is not None else "CI at each row's level, below",
        baseline_mean=base_mean if base_runs else NAN,
        judged=judged,
    )


def sweep_table(
    tracker: T.Tracker, parent: RunInfo, alpha: float | None = None, margin: float | None = None
) -> Table:
    """The table of a sweep, decided with the alpha and margin recorded with it (or these)."""
    settings = Settings.recorded(parent, alpha, margin)
    baseline, groups = sweep_groups(tracker, parent)
    for g in (baseline, *groups):
        g.curve = read_curve(tracker, g)
    table = build_table(baseline, groups, settings)
    table.sweep = parent.name
    table.sweep_run_id = parent.run_id
    return table
