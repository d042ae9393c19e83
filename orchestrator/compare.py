"""The comparison table: one row per configuration against the baseline, with verdicts.

Verdicts answer the course's question ("does this tweak help?") honestly: with several
seeds on both sides the difference in mean best val loss is compared with the seed noise
by Welch's t-test (two-sided, 5%); with one seed the table says so instead of guessing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .tracking import RunInfo

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "md", "csv", "json", "html", "parquet")
ALPHA = 0.05

COLUMNS = [
    "knob",
    "value",
    "seeds",
    "best_val_loss",
    "best_val_loss_std",
    "delta",
    "delta_pct",
    "best_val_ppl",
    "final_train_loss",
    "train_val_gap",
    "best_step",
    "tokens_per_s",
    "wall_s",
    "params",
    "verdict",
    "p_value",
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


def verdict(base: list[float], variant: list[float], alpha: float = ALPHA) -> tuple[str, float]:
    """('better' | 'worse' | 'within noise' | 'single seed', p-value or NaN). Lower loss is better."""
    if len(base) < 2 or len(variant) < 2:
        return "single seed", math.nan
    mb, mv = statistics.fmean(base), statistics.fmean(variant)
    vb, vv = statistics.variance(base), statistics.variance(variant)
    if vb == 0 and vv == 0:
        p = 1.0 if mb == mv else 0.0
    else:
        from scipy import stats

        p = float(stats.ttest_ind(variant, base, equal_var=False).pvalue)
    if p < alpha:
        return ("better" if mv < mb else "worse"), p
    return "within noise", p


def _mean(runs: list[RunInfo], key: str) -> float:
    vals = [r.metrics[key] for r in runs if key in r.metrics and math.isfinite(r.metrics[key])]
    return statistics.fmean(vals) if vals else math.nan


def build_table(baseline: Group, groups: list[Group]) -> pd.DataFrame:
    import pandas as pd

    def done(g: Group) -> list[RunInfo]:
        return [
            r
            for r in g.runs
            if r.status == "FINISHED" and r.state == "complete" and "best_val_loss" in r.metrics
        ]

    base_runs = done(baseline)
    base_losses = [r.metrics["best_val_loss"] for r in base_runs]
    base_mean = statistics.fmean(base_losses) if base_losses else math.nan
    rows = []
    for g in [baseline, *groups]:
        ok = done(g)
        losses = [r.metrics["best_val_loss"] for r in ok]
        mean = statistics.fmean(losses) if losses else math.nan
        states = sorted({r.state for r in g.runs})
        if g.is_baseline:
            word, p = "baseline", math.nan
        elif not ok:
            reasons = sorted({r.tags.get("sweep.reason", "") for r in g.runs} - {""})
            word, p = (states[0] if len(states) == 1 else "/".join(states)), math.nan
            if reasons:
                word += f": {reasons[0]}"
        else:
            word, p = verdict(base_losses, losses)
        rows.append(
            {
                "knob": g.knob,
                "value": g.value,
                "seeds": len(ok),
                "best_val_loss": mean,
                "best_val_loss_std": statistics.stdev(losses) if len(losses) > 1 else math.nan,
                "delta": mean - base_mean,
                "delta_pct": 100.0 * (mean - base_mean) / base_mean if base_mean else math.nan,
                "best_val_ppl": _mean(ok, "best_val_ppl"),
                "final_train_loss": _mean(ok, "final_train_loss"),
                "train_val_gap": _mean(ok, "final_val_loss") - _mean(ok, "final_train_loss"),
                "best_step": _mean(ok, "best_step"),
                "tokens_per_s": _mean(ok, "train_tokens_per_s"),
                "wall_s": _mean(ok, "wall_s"),
                "params": _mean(ok, "params"),
                "verdict": word,
                "p_value": p,
                "state": "/".join(states),
                "run_ids": " ".join(r.run_id for r in g.runs),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    if base_runs:
        df.attrs["baseline_mean"] = base_mean
    return df


# -- rendering and export ------------------------------------------------------------------


def _display_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=["run_ids", "state"]).copy()

    def fmt(v, spec):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    out["best_val_loss"] = [
        fmt(m, ".4f") + ("" if math.isnan(s) else f" ± {s:.4f}")
        for m, s in zip(df["best_val_loss"], df["best_val_loss_std"], strict=True)
    ]
    out = out.drop(columns=["best_val_loss_std"])
    out["delta"] = [fmt(v, "+.4f") for v in df["delta"]]
    out["delta_pct"] = [
        fmt(v, "+.1f") + ("%" if not math.isnan(v) else "") for v in df["delta_pct"]
    ]
    for col, spec in (
        ("best_val_ppl", ".2f"),
        ("final_train_loss", ".4f"),
        ("train_val_gap", "+.4f"),
        ("wall_s", ".1f"),
        ("p_value", ".3f"),
    ):
        out[col] = [fmt(v, spec) for v in df[col]]
    for col in ("best_step", "tokens_per_s", "params"):
        out[col] = [fmt(v, ",.0f") for v in df[col]]
    return out.rename(
        columns={
            "delta_pct": "delta %",
            "train_val_gap": "gap",
            "best_val_ppl": "ppl",
            "tokens_per_s": "tok/s",
            "final_train_loss": "train_loss",
            "p_value": "p",
        }
    )


def render(df: pd.DataFrame, fmt: str) -> str | bytes:
    if fmt == "table":
        from tabulate import tabulate

        shown = _display_frame(df)
        return tabulate(
            shown.values.tolist(),
            headers=list(shown.columns),
            tablefmt="simple",
            disable_numparse=True,
        )
    if fmt == "md":
        return _display_frame(df).to_markdown(index=False, disable_numparse=True)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    if fmt == "html":
        return _display_frame(df).to_html(index=False, border=0, classes="sweep-table")
    if fmt == "parquet":
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    raise UserError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write to a temporary name in the same directory, then rename: never half a file."""
    from model.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def format_for(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    ext = Path(path).suffix.lower().lstrip(".")
    return {"markdown": "md", "htm": "html", "txt": "table", "pq": "parquet"}.get(
        ext, ext if ext in FORMATS else "table"
    )


# -- sweeps in the store -------------------------------------------------------------------

SWEEP_ROLES = ("ablation", "search")


def find_sweep(tracker, sweep_id: str | None = None, knob: str | None = None) -> RunInfo:
    """A sweep parent by id, the latest ablation of a knob, or the latest sweep."""
    from . import tracking as T

    if sweep_id:
        run = tracker.get_run(sweep_id)
        if run.tags.get(T.TAG_ROLE) not in SWEEP_ROLES:
            raise UserError(
                f"run {sweep_id} is not a sweep (its role is '{run.tags.get(T.TAG_ROLE, 'none')}')"
            )
        return run
    if knob:
        runs = tracker.search(
            f"tags.`{T.TAG_ROLE}` = 'ablation' and tags.`{T.TAG_KNOB}` = '{knob}'"
        )
        if not runs:
            raise UserError(
                f"no ablation of '{knob}' in experiment '{tracker.experiment_name}': run `sweep ablate --knob {knob}`"
            )
        return runs[0]
    runs = [
        r
        for r in tracker.search(f"tags.`{T.TAG_ROLE}` != ''")
        if r.tags.get(T.TAG_ROLE) in SWEEP_ROLES
    ]
    if not runs:
        raise UserError(
            f"no sweep in experiment '{tracker.experiment_name}' yet: run `sweep ablate --knob dropout`"
        )
    return runs[0]


def sweep_groups(tracker, parent: RunInfo) -> tuple[Group, list[Group]]:
    from . import tracking as T

    knob = parent.tags.get(T.TAG_KNOB, "search")
    baseline_id = parent.tags.get(T.TAG_BASELINE)
    if not baseline_id:
        raise UserError(f"sweep {parent.run_id} does not name its baseline (tag {T.TAG_BASELINE})")
    base_run = tracker.get_run(baseline_id)
    baseline = Group(
        knob,
        parent.tags.get("sweep.baseline_value", "baseline"),
        tracker.baseline_members(base_run),
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


def sweep_table(tracker, parent: RunInfo) -> pd.DataFrame:
    baseline, groups = sweep_groups(tracker, parent)
    df = build_table(baseline, groups)
    df.attrs["sweep"] = parent.name
    df.attrs["sweep_run_id"] = parent.run_id
    return df


def attach_table(tracker, parent_id: str, df: pd.DataFrame) -> list[Path]:
    """table.csv and table.md on the parent run, and the same files next to the store."""
    import tempfile as _tf

    name = df.attrs.get("sweep", "sweep").replace(":", "-")
    out_dir = tracker.store_dir / "sweep-tables"
    written = [
        write_atomic(out_dir / f"{name}-{parent_id[:8]}.csv", render(df, "csv")),
        write_atomic(out_dir / f"{name}-{parent_id[:8]}.md", render(df, "md")),
    ]
    with _tf.TemporaryDirectory() as tmp:
        for fmt in ("csv", "md"):
            p = write_atomic(Path(tmp) / f"table.{fmt}", render(df, fmt))
            tracker.log_artifact(parent_id, p)
    return written
