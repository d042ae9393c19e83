"""Figures people look at: learning curves, deltas against the baseline, Optuna's view.

Every figure is a PNG made with matplotlib's Agg backend, written atomically, and (by
default) attached to the sweep's parent run under `plots/` so it shows in the MLflow UI.
Nothing here trains or changes a run's numbers; it only reads the store.
"""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import tracking as T
from ..errors import UserError
from ..paths import plots_dir, run_slug
from .export import write_atomic
from .table import Group, _sort_key, sweep_groups, sweep_table

if TYPE_CHECKING:
    import pandas as pd

ARTIFACT_DIR = "plots"
CURVE_METRIC = "val_loss"
VERDICT_COLORS = {
    "better": "#2ca02c",
    "worse": "#d62728",
    "within noise": "#7f7f7f",
    "single seed": "#1f77b4",
}
MAX_LEGEND = 12  # more variants than this (a search): no per-variant legend entries
FIGSIZE = (9.0, 5.5)
DPI = 110


@dataclass
class PlotResult:
    parent_id: str
    out_dir: Path
    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)  # artifact paths on the parent run


def sweep_slug(parent: T.RunInfo) -> str:
    return run_slug(parent.name or "sweep", parent.run_id)


def default_dir(tracker: T.Tracker, parent: T.RunInfo) -> Path:
    return plots_dir(tracker.store_dir) / sweep_slug(parent)


def metric_history(
    tracker: T.Tracker, run_id: str, key: str = CURVE_METRIC
) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric, by step, the last value kept when a step repeats."""
    by_step: dict[int, float] = {}
    for step, _, value in sorted(tracker.metric_history(run_id, key)):
        if math.isfinite(value):
            by_step[step] = value
    return sorted(by_step.items())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> Path:
    """Render to memory, then write atomically (never half a PNG on disk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return write_atomic(path, buf.getvalue())


def _curve_runs(group: Group) -> list[T.RunInfo]:
    """Runs worth drawing: finished or pruned ones (a pruned curve shows where it stopped)."""
    return [r for r in group.runs if r.state in (T.RunState.COMPLETE, T.RunState.PRUNED)]


def _band(
    histories: list[list[tuple[int, float]]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps present in every seed, with the mean, min and max across seeds."""
    if not histories:
        return [], [], [], []
    common = set.intersection(*(set(s for s, _ in h) for h in histories))
    steps = sorted(common)
    tables = [dict(h) for h in histories]
    cols = [[t[s] for t in tables] for s in steps]
    return (
        steps,
        [statistics.fmean(c) for c in cols],
        [min(c) for c in cols],
        [max(c) for c in cols],
    )


def figure_curves(
    tracker: T.Tracker,
    parent: T.RunInfo,
    baseline: Group | None,
    groups: list[Group],
    metric: str = CURVE_METRIC,
    x: str = "step",
):
    """Val loss against step (or training FLOPs, `x="flops"`: a wider model costs more per
    step): the baseline thick and black, each variant's seeds as a band."""
    from . import compute

    def scale(g: Group) -> float:
        if x == "step":
            return 1.0
        per = [v for v in (compute.flops_per_step(r) for r in _curve_runs(g)) if math.isfinite(v)]
        return statistics.fmean(per) if per else math.nan

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    many = len(groups) > MAX_LEGEND
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "viridis")
    drawn = 0
    for i, g in enumerate(groups):
        hist = [h for h in (metric_history(tracker, r.run_id, metric) for r in _curve_runs(g)) if h]
        steps, mean, lo, hi = _band(hist)
        steps = [st * scale(g) for st in steps]
        if not steps or not all(math.isfinite(v) for v in steps):
            continue
        color = cmap(i % 10) if len(groups) <= 10 else cmap(i / max(1, len(groups) - 1))
        seeds = f" ({len(hist)} seeds)" if len(hist) > 1 else ""
        label = (
            None
            if many
            else f"{g.knob}={g.value}{seeds}"
            if g.knob != "search"
            else f"{g.value}{seeds}"
        )
        ax.plot(
            steps,
            mean,
            color=color,
            lw=1.0 if many else 1.8,
            alpha=0.6 if many else 0.95,
            label=label,
            marker=None if many else "o",
            ms=3,
        )
        if len(hist) > 1:
            ax.fill_between(steps, lo, hi, color=color, alpha=0.15, lw=0)
        drawn += 1
    if baseline is not None:
        hist = [
            h
            for h in (metric_history(tracker, r.run_id, metric) for r in _curve_runs(baseline))
            if h
        ]
        steps, mean, lo, hi = _band(hist)
        steps = [st * scale(baseline) for st in steps]
        if steps and all(math.isfinite(v) for v in steps):
            seeds = f", {len(hist)} seeds" if len(hist) > 1 else ""
            ax.plot(
                steps,
                mean,
                color="black",
                lw=3.0,
                label=f"baseline ({baseline.knob}={baseline.value}{seeds})",
                zorder=10,
                marker="o",
                ms=4,
            )
            if len(hist) > 1:
                ax.fill_between(steps, lo, hi, color="black", alpha=0.12, lw=0, zorder=9)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    what = "step" if x == "step" else "training FLOPs"
    ax.set_xlabel(what)
    ax.set_ylabel(metric.replace("_", " "))
    band = (
        "shaded: min-max across seeds"
        if any(len(_curve_runs(g)) > 1 for g in [*groups, *([baseline] if baseline else [])])
        else ""
    )
    ax.set_title(
        f"{parent.name}: {metric} against {what}" + (f"\n{band}" if band else ""), fontsize=11
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return fig


CROWDED_BARS = 12  # more bars than this: smaller, upright notes over the bars
LABEL_CHAR_IN = 0.075  # about the width of one tick label character, in inches
LABEL_CHARS = 24  # longer values are shortened (…) on the axis; the table has them whole


def _delta_label(value: str, baseline: bool, search: bool) -> str:
    """A bar's tick label: a search trial by its number (its params are in the table), an
    ablation by its value, shortened past LABEL_CHARS."""
    if search and value.startswith("trial-"):
        value = value.split(":", 1)[0].removeprefix("trial-")
    if len(value) > LABEL_CHARS:
        value = value[: LABEL_CHARS - 1] + "…"
    return f"{value}\n(baseline)" if baseline and value != "baseline" else value


def figure_deltas(parent: T.RunInfo, df: pd.DataFrame):
    """Best val loss minus the baseline's per value; error bars are the seed std."""
    plt = _pyplot()
    if df[(df["verdict"] != "baseline") & df["delta"].notna()].empty:
        return None
    base = df[df["verdict"] == "baseline"]
    base_std = float(base["best_val_loss_std"].iloc[0]) if not base.empty else math.nan
    rows = df[df["delta"].notna()]
    if str(df["knob"].iloc[0]) != "search":  # the baseline's value in its place among the values
        rows = rows.iloc[
            sorted(range(len(rows)), key=lambda i: _sort_key(str(rows["value"].iloc[i])))
        ]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    knob = str(df["knob"].iloc[0])
    labels = [
        _delta_label(str(v), w == "baseline", knob == "search")
        for v, w in zip(rows["value"], rows["verdict"], strict=True)
    ]
    x = list(range(len(rows)))
    deltas = [float(v) for v in rows["delta"]]
    stds = [float(s) if math.isfinite(float(s)) else 0.0 for s in rows["best_val_loss_std"]]
    words = [str(w) for w in rows["verdict"]]
    colors = [VERDICT_COLORS.get(w, "#9467bd") for w in words]
    ax.bar(x, deltas, color=colors, alpha=0.85, width=0.6)
    pad = max(0.0, (3 - len(x)) / 2)
    ax.set_xlim(-0.6 - pad, len(x) - 0.4 + pad)
    if any(stds):
        ax.errorbar(x, deltas, yerr=stds, fmt="none", ecolor="black", capsize=5, lw=1.2)
    if math.isfinite(base_std) and base_std > 0:
        ax.axhspan(
            -base_std,
            base_std,
            color="black",
            alpha=0.08,
            label=f"baseline seed std (±{base_std:.4f})",
        )
    ax.axhline(0.0, color="black", lw=1.2)
    span = max((abs(d) + s for d, s in zip(deltas, stds, strict=True)), default=0.0) or 1e-3
    # Many bars: the delta alone, upright, small (the verdict is the bar's colour, see legend)
    crowded = len(x) > CROWDED_BARS
    for xi, d, s, w in zip(x, deltas, stds, words, strict=True):
        y = d + s if d >= 0 else d - s
        note = f"{d:+.3f}" if crowded else f"{d:+.4f}\n{w}"
        text = "baseline" if w == "baseline" else note
        ax.annotate(
            text,
            (xi, y),
            xytext=(0, 4 if d >= 0 else -4),
            textcoords="offset points",
            ha="center",
            va="bottom" if d >= 0 else "top",
            fontsize=6 if crowded else 8,
            rotation=90 if crowded else 0,
        )
    ax.set_ylim(-span * (2.5 if crowded else 1.5), span * (2.5 if crowded else 1.5))
    # Labels upright while they fit side by side; turned a quarter (no overlap) when they don't
    longest = max(len(line) for label in labels for line in label.splitlines())
    upright = longest * LABEL_CHAR_IN * len(labels) <= FIGSIZE[0] * 0.8
    size = 8 if len(labels) <= 2 * CROWDED_BARS else 6
    ax.set_xticks(x, labels, rotation=0 if upright else 90, fontsize=size)
    ax.set_xlabel(knob if knob != "search" else "trial")
    ax.set_ylabel("Δ best val loss vs baseline (lower is better)")
    ax.set_title(
        f"{parent.name}: change in best val loss against the baseline\nerror bars: std across seeds",
        fontsize=11,
    )
    ax.grid(True, axis="y", alpha=0.3)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=VERDICT_COLORS[w]) for w in VERDICT_COLORS if w in words
    ]
    names = [w for w in VERDICT_COLORS if w in words]
    h0, l0 = ax.get_legend_handles_labels()
    ax.legend([*handles, *h0], [*names, *l0], fontsize=8, loc="best")
    return fig


# -- searches ----------------------------------------------------------------------------


def load_study(tracker: T.Tracker, parent: T.RunInfo):
    """The Optuna study behind a search parent (from its `sweep.storage` tag), or a note."""
    from ..studies import load_recorded_study

    name = parent.tags.get(T.TAG_STUDY) or parent.name.removeprefix("search:")
    study, why = load_recorded_study(tracker.store_dir, name, parent.tags.get(T.TAG_STORAGE))
    if study is None:
        return None, f"{why}: optimization history and importances skipped"
    return study, None


def figures_optuna(study) -> tuple[list[tuple[str, object]], list[str]]:
    """Optuna's views of a study (history, importances, parallel coordinates) in this
    module's size; drawn by the Optuna adapter, the only place here that imports optuna."""
    from ..studies import figures_optuna as draw

    return draw(study, _pyplot(), FIGSIZE)


# -- the command -------------------------------------------------------------------------


def _groups(tracker: T.Tracker, parent: T.RunInfo) -> tuple[Group | None, list[Group]]:
    try:
        return sweep_groups(tracker, parent)
    except UserError:
        if parent.tags.get(T.TAG_BASELINE):
            raise
        groups: dict[str, Group] = {}
        for run in tracker.children(parent.run_id):
            groups.setdefault(
                run.tags.get(T.TAG_VALUE, run.name),
                Group("search", run.tags.get(T.TAG_VALUE, run.name)),
            ).runs.append(run)
        return None, list(groups.values())


def plot_sweep(
    tracker: T.Tracker, parent: T.RunInfo, out_dir: Path | None = None, attach: bool = True
) -> PlotResult:
    """Write every figure of one sweep to `out_dir` and attach them to the parent run."""
    out = Path(out_dir) if out_dir else default_dir(tracker, parent)
    result = PlotResult(parent.run_id, out)
    baseline, groups = _groups(tracker, parent)
    figs: list[tuple[str, object]] = []
    fig = figure_curves(tracker, parent, baseline, groups)
    if fig is None:
        result.notes.append(
            f"no {CURVE_METRIC} history in sweep {parent.run_id} yet: no learning curves"
        )
    else:
        figs.append(("val-loss", fig))
        fig = figure_curves(tracker, parent, baseline, groups, x="flops")
        if fig is not None:
            figs.append(("val-loss-flops", fig))
    if baseline is not None:
        fig = figure_deltas(parent, sweep_table(tracker, parent))
        if fig is None:
            result.notes.append("no finished variant: no delta figure")
        else:
            figs.append(("delta-best-val-loss", fig))
    else:
        result.notes.append("the sweep names no baseline: no delta figure")
    if parent.tags.get(T.TAG_ROLE) == T.Role.SEARCH:
        study, note = load_study(tracker, parent)
        if study is None:
            result.notes.append(note)
        else:
            more, notes = figures_optuna(study)
            figs.extend(more)
            result.notes.extend(notes)
    for name, fig in figs:
        path = save_png(fig, out / f"{name}.png")
        result.paths.append(path)
        if attach:
            tracker.log_artifact(parent.run_id, path, ARTIFACT_DIR)
            result.attached.append(f"{ARTIFACT_DIR}/{path.name}")
    return result
