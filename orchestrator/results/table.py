"""The comparison table: one row per configuration against the baseline, with verdicts.

Rows are built from the runs in the store, by seed: a run's seed is its `sweep.seed` tag,
and a (configuration, seed) counts once whatever its run was named. Each variant row is
compared with the baseline on the seeds both have (paired t; Welch where seeds differ;
see `verdicts.py`), Holm-adjusted across the table's variant rows, and judged better,
worse, equivalent (inside ± the margin), inconclusive (with the seeds that would settle
it) or single seed. A sweep run with `--until-clear` records its looks and the values they
covered, and its table replays those rows with the same sequential levels, so a later
`sweep table` says what the run said; a value added later without it is judged at fixed
seeds (`judging.py`; the settings a sweep records: `settings.py`). Every row also carries
its training FLOPs and the compute it needed to reach the baseline's best val loss
(`compute.py`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import tracking as T
from ..errors import UserError
from ..paths import tables_dir
from ..tracking import RunInfo, RunState
from . import compute
from .export import render, write_atomic
from .judging import Judged, describe, judge
from .settings import TAG_ALPHA, TAG_MARGIN, Settings, ci_label
from .verdicts import DEFAULT_ALPHA, DEFAULT_MARGIN, Verdict

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "knob",
    "value",
    "seeds",
    "best_val_loss",
    "best_val_loss_std",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "delta_pct",
    "pairing",
    "p_value",
    "p_adjusted",
    "verdict",
    "seeds_needed",
    "best_val_ppl",
    "final_train_loss",
    "train_val_gap",
    "best_step",
    "tokens_per_s",
    "wall_s",
    "params",
    "train_flops",
    "compute_to_target",
    "state",
    "run_ids",
]


@dataclass
class Group:
    """The runs (seeds) of one configuration."""

    knob: str
    value: str
    runs: list[RunInfo] = field(default_factory=list)
    is_baseline: bool = False
    curve: list[tuple[int, float]] = field(default_factory=list)  # mean val loss by step

    def done(self) -> list[RunInfo]:
        """Finished runs with a best val loss, one per seed (the first recorded wins)."""
        out: dict[int | str, RunInfo] = {}
        for r in sorted(self.runs, key=lambda r: r.start_time):
            if r.state is RunState.COMPLETE and math.isfinite(
                r.metrics.get("best_val_loss", math.nan)
            ):
                out.setdefault(seed_of(r), r)
        return list(out.values())

    def losses(self) -> dict[int | str, float]:
        return {seed_of(r): r.metrics["best_val_loss"] for r in self.done()}


def seed_of(run: RunInfo) -> int | str:
    raw = run.tags.get(T.TAG_SEED, run.params.get("seed"))
    try:
        return int(raw)
    except (TypeError, ValueError):
        return run.run_id  # no seed recorded: a run of its own


def _mean(runs: list[RunInfo], key: str) -> float:
    vals = [r.metrics[key] for r in runs if key in r.metrics and math.isfinite(r.metrics[key])]
    return statistics.fmean(vals) if vals else math.nan


def _flops(runs: list[RunInfo], fn) -> float:
    vals = [v for v in (fn(r) for r in runs) if math.isfinite(v)]
    return statistics.fmean(vals) if vals else math.nan


def compute_to_target(base: Group, group: Group) -> float:
    """Training FLOPs the variant needed to first reach the baseline's best (mean-curve) val
    loss, over what the baseline needed; NaN when it never did or nothing was recorded."""
    if not base.curve or not group.curve:
        return math.nan
    target = min(v for _, v in base.curve)
    base_step = compute.first_reaching(base.curve, target)
    step = compute.first_reaching(group.curve, target)
    base_fps = _flops(base.done(), compute.flops_per_step)
    fps = _flops(group.done(), compute.flops_per_step)
    if step is None or not base_step or not (base_fps > 0 and fps > 0):
        return math.nan
    return (fps * step) / (base_fps * base_step)


def build_table(
    baseline: Group, groups: list[Group], settings: Settings | None = None
) -> pd.DataFrame:
    import pandas as pd

    settings = settings or Settings()
    base_runs = baseline.done()
    base_mean = _mean(base_runs, "best_val_loss")
    judged = judge(baseline, groups, settings) if base_runs else Judged([None] * len(groups))
    decided = judged.rows
    rows = []
    for g, row in [(baseline, None), *zip(groups, decided, strict=True)]:
        ok = g.done()
        losses = [r.metrics["best_val_loss"] for r in ok]
        states = sorted({str(r.state) for r in g.runs})
        c = row.comparison if row is not None else None
        if g.is_baseline:
            word = str(Verdict.BASELINE)
        elif row is not None:
            word = str(row.verdict)
        else:
            reasons = sorted({r.tags.get(T.TAG_REASON, "") for r in g.runs} - {""})
            word = states[0] if len(states) == 1 else "/".join(states) or "no runs"
            if reasons:
                word += f": {reasons[0]}"
        delta = 0.0 if g.is_baseline and ok else (c.delta if c is not None else math.nan)
        rows.append(
            {
                "knob": g.knob,
                "value": g.value,
                "seeds": len(ok),
                "best_val_loss": statistics.fmean(losses) if losses else math.nan,
                "best_val_loss_std": statistics.stdev(losses) if len(losses) > 1 else math.nan,
                "delta": delta,
                "delta_ci_low": row.ci_low if row is not None else math.nan,
                "delta_ci_high": row.ci_high if row is not None else math.nan,
                "delta_pct": 100.0 * delta / base_mean if base_mean else math.nan,
                "pairing": c.pairing if c is not None else "",
                "p_value": c.p_value if c is not None else math.nan,
                "p_adjusted": row.p_adjusted if row is not None else math.nan,
                "verdict": word,
                "seeds_needed": row.seeds_needed
                if row is not None and row.seeds_needed
                else math.nan,
                "best_val_ppl": _mean(ok, "best_val_ppl"),
                "final_train_loss": _mean(ok, "final_train_loss"),
                "train_val_gap": _mean(ok, "final_val_loss") - _mean(ok, "final_train_loss"),
                "best_step": _mean(ok, "best_step"),
                "tokens_per_s": _mean(ok, "train_tokens_per_s"),
                "wall_s": _mean(ok, "wall_s"),
                "params": _mean(ok, "params"),
                "train_flops": _flops(ok, compute.train_flops),
                "compute_to_target": 1.0
                if g.is_baseline and baseline.curve
                else compute_to_target(baseline, g),
                "state": "/".join(states),
                "run_ids": " ".join(r.run_id for r in g.runs),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    if base_runs:
        df.attrs["baseline_mean"] = base_mean
    df.attrs["alpha"] = settings.alpha
    df.attrs["margin"] = settings.margin
    levels = {r.level for r in decided if r is not None and not math.isnan(r.ci_low)}
    # the header names the interval's level; rows of --until-clear each have their look's
    one = levels.pop() if len(levels) == 1 else settings.alpha if not levels else None
    df.attrs["ci_label"] = ci_label(one) if one is not None else "CI at each row's level, below"
    df.attrs["legend"] = describe(settings, judged, baseline.knob)
    return df


def legend(df: pd.DataFrame) -> str:
    """One sentence under a table: what its verdicts mean."""
    return df.attrs.get("legend", describe(Settings()))


def sweep_groups(tracker, parent: RunInfo) -> tuple[Group, list[Group]]:
    knob = parent.tags.get(T.TAG_KNOB, "search")
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
    groups: dict[str, Group] = {}
    for run in tracker.children(parent.run_id):
        value = run.tags.get(T.TAG_VALUE, run.name)
        groups.setdefault(value, Group(knob, value)).runs.append(run)
    ordered = list(groups.values())
    if knob != "search":
        ordered.sort(key=lambda g: _sort_key(g.value))
    return baseline, ordered


def _sort_key(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _curve(tracker, group: Group) -> list[tuple[int, float]]:
    curves = []
    for r in group.done():
        by_step: dict[int, float] = {}
        for step, _, value in sorted(tracker.metric_history(r.run_id, "val_loss")):
            if math.isfinite(value):
                by_step[step] = value
        curves.append(sorted(by_step.items()))
    return compute.mean_curve(curves)


def sweep_table(
    tracker, parent: RunInfo, alpha: float | None = None, margin: float | None = None
) -> pd.DataFrame:
    """The table of a sweep, decided with the alpha and margin recorded with it (or these)."""
    settings = Settings.recorded(parent, alpha, margin)
    baseline, groups = sweep_groups(tracker, parent)
    for g in (baseline, *groups):
        g.curve = _curve(tracker, g)
    df = build_table(baseline, groups, settings)
    df.attrs["sweep"] = parent.name
    df.attrs["sweep_run_id"] = parent.run_id
    return df


def best_row_summary(df: pd.DataFrame) -> tuple[dict[str, float], dict[str, str]]:
    """The lowest variant row as metrics and tags for the sweep's parent run, so the MLflow
    runs table reads at a glance: best_val_loss, delta, and the value with its verdict."""
    rows = df[(df["verdict"] != "baseline") & df["best_val_loss"].notna()]
    if rows.empty:
        return {}, {}
    row = rows.loc[rows["best_val_loss"].idxmin()]
    metrics = {"best_val_loss": float(row["best_val_loss"]), "best_delta": float(row["delta"])}
    tags = {"sweep.best_value": str(row["value"]), "sweep.best_verdict": str(row["verdict"])}
    return {k: v for k, v in metrics.items() if math.isfinite(v)}, tags


def attach_table(tracker, parent_id: str, df: pd.DataFrame) -> list[Path]:
    """table.csv and table.md on the parent run, and the same files next to the store."""
    import tempfile as _tf

    name = df.attrs.get("sweep", "sweep").replace(":", "-")
    out_dir = tables_dir(tracker.store_dir)
    written = [
        write_atomic(out_dir / f"{name}-{parent_id[:8]}.csv", render(df, "csv")),
        write_atomic(out_dir / f"{name}-{parent_id[:8]}.md", render(df, "md")),
    ]
    metrics, tags = best_row_summary(df)
    tracker.set_tags(
        parent_id,
        {
            TAG_ALPHA: repr(df.attrs.get("alpha", DEFAULT_ALPHA)),
            TAG_MARGIN: repr(df.attrs.get("margin", DEFAULT_MARGIN)),
            **tags,
        },
    )
    if metrics:
        tracker.log_metrics(parent_id, metrics, 0)
    with _tf.TemporaryDirectory() as tmp:
        for fmt in ("csv", "md"):
            p = write_atomic(Path(tmp) / f"table.{fmt}", render(df, fmt))
            tracker.log_artifact(parent_id, p)
    return written
