"""Figures people look at: learning curves, deltas against the baseline, Optuna's view.

Every figure is a PNG made with matplotlib's Agg backend, written atomically. Nothing here
writes to the store: `sweep plot` attaches the files to the sweep's parent run (under
`plots/`) through the sweep (`sweeps/attach.py`). The delta figure is drawn from the Table
the command built, so its colours are the verdicts of the table printed beside it.
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
from .groups import SEARCH, Group, sort_key, sweep_groups, value_groups
from .verdicts import Verdict

if TYPE_CHECKING:
    from .table import Table

CURVE_METRIC = "val_loss"
VERDICT_COLORS = {
    Verdict.BETTER: "#2ca02c",
    Verdict.WORSE: "#d62728",
    Verdict.EQUIVALENT: "#7f7f7f",
    Verdict.INCONCLUSIVE: "#9467bd",
    Verdict.SINGLE_SEED: "#1f77b4",
    Verdict.UNSTABLE: "#ff7f0e",
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


def save_png(fig, path: Path, description: str | None = None) -> Path:
    """Render to memory, then write atomically (never half a PNG on disk). `description`
    goes into the PNG's Description text chunk (the delta figure records there the verdicts
    it was coloured by)."""
    buf = io.BytesIO()
    meta = {"Description": description} if description else None
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata=meta)
    _pyplot().close(fig)
    return write_atomic(path, buf.getvalue())


def _curve_runs(group: Group) -> list[T.RunInfo]:
    """Runs worth drawing: finished, reused or pruned ones (a pruned curve shows where it
    stopped)."""
    drawn = (T.RunState.COMPLETE, T.RunState.REUSED, T.RunState.PRUNED)
    return [r for r in group.runs if r.state in drawn]


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


def _flops_scale(g: Group) -> float:
    """Training FLOPs per step of a group's runs (the x scale of a curve against FLOPs)."""
    from . import compute

    per = [v for v in (compute.flops_per_step(r) for r in _curve_runs(g)) if math.isfinite(v)]
    return statistics.fmean(per) if per else math.nan


def _draw(ax, tracker: T.Tracker, g: Group, metric: str, x: str, style: dict) -> int:
    """One group's mean curve and (with several seeds) its min-max band; returns how many
    seeds were drawn (0: nothing to draw). `style`: the line's, plus `band` (its alpha)."""
    hist = [h for h in (metric_history(tracker, r.run_id, metric) for r in _curve_runs(g)) if h]
    steps, mean, lo, hi = _band(hist)
    scale = 1.0 if x == "step" else _flops_scale(g)
    steps = [st * scale for st in steps]
    if not steps or not all(math.isfinite(v) for v in steps):
        return 0
    style = dict(style)
    band = style.pop("band")
    label = style.pop("label")
    if label is not None and len(hist) > 1:
        label = label.format(seeds=len(hist))
    elif label is not None:
        label = label.format(seeds=1).replace(" (1 seeds)", "").replace(", 1 seeds", "")
    ax.plot(steps, mean, label=label, **style)
    if len(hist) > 1:
        ax.fill_between(
            steps, lo, hi, color=style["color"], alpha=band, lw=0, zorder=style.get("zorder", 2) - 1
        )
    return len(hist)


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    many = len(groups) > MAX_LEGEND
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "viridis")
    drawn = 0
    for i, g in enumerate(groups):
        name = f"{g.knob}={g.value}" if g.knob != SEARCH else g.value
        style = {
            "color": cmap(i % 10) if len(groups) <= 10 else cmap(i / max(1, len(groups) - 1)),
            "lw": 1.0 if many else 1.8,
            "alpha": 0.6 if many else 0.95,
            "label": None if many else name + " ({seeds} seeds)",
            "marker": None if many else "o",
            "ms": 3,
            "zorder": 2,
            "band": 0.15,
        }
        drawn += bool(_draw(ax, tracker, g, metric, x, style))
    if baseline is not None:
        style = {"color": "black", "lw": 3.0, "zorder": 10, "marker": "o", "ms": 4, "band": 0.12,
                 "label": f"baseline ({baseline.knob}={baseline.value}, {{seeds}} seeds)"}  # fmt: skip
        drawn += bool(_draw(ax, tracker, baseline, metric, x, style))
    if not drawn:
        plt.close(fig)
        return None
    what = "step" if x == "step" else "training FLOPs"
    ax.set_xlabel(what)
    ax.set_ylabel(metric.replace("_", " "))
    seeded = any(len(_curve_runs(g)) > 1 for g in [*groups, *([baseline] if baseline else [])])
    band = "\nshaded: min-max across seeds" if seeded else ""
    ax.set_title(f"{parent.name}: {metric} against {what}{band}", fontsize=11)
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


def figure_deltas(parent: T.RunInfo, table: Table):
    """Best val loss minus the baseline's per value, coloured by the table's verdicts; error
    bars are the seed std."""
    plt = _pyplot()
    if not [r for r in table.variants if math.isfinite(r.delta)]:
        return None
    base = next((r for r in table.rows if r.is_baseline), None)
    base_std = base.best_val_loss_std if base is not None else math.nan
    rows = [r for r in table.rows if math.isfinite(r.delta)]
    knob = table.knob
    if knob != SEARCH:  # the baseline's value in its place among the values
        rows.sort(key=lambda r: sort_key(r.value))
    fig, ax = plt.subplots(figsize=FIGSIZE)
    labels = [_delta_label(r.value, r.is_baseline, knob == SEARCH) for r in rows]
    x = list(range(len(rows)))
    deltas = [r.delta for r in rows]
    stds = [r.best_val_loss_std if math.isfinite(r.best_val_loss_std) else 0.0 for r in rows]
    colors = [VERDICT_COLORS.get(r.verdict, "#8c564b") for r in rows]
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
    _annotate(ax, x, rows, stds, span)
    # Labels upright while they fit side by side; turned a quarter (no overlap) when they don't
    longest = max(len(line) for label in labels for line in label.splitlines())
    upright = longest * LABEL_CHAR_IN * len(labels) <= FIGSIZE[0] * 0.8
    size = 8 if len(labels) <= 2 * CROWDED_BARS else 6
    ax.set_xticks(x, labels, rotation=0 if upright else 90, fontsize=size)
    ax.set_xlabel(knob if knob != SEARCH else "trial")
    ax.set_ylabel("Δ best val loss vs baseline (lower is better)")
    ax.set_title(
        f"{parent.name}: change in best val loss against the baseline\nerror bars: std across seeds",
        fontsize=11,
    )
    ax.grid(True, axis="y", alpha=0.3)
    shown = {r.verdict for r in rows}
    names = [v for v in VERDICT_COLORS if v in shown]
    handles = [plt.Rectangle((0, 0), 1, 1, color=VERDICT_COLORS[v]) for v in names]
    h0, l0 = ax.get_legend_handles_labels()
    ax.legend([*handles, *h0], [*map(str, names), *l0], fontsize=8, loc="best")
    return fig


def _annotate(ax, x: list[int], rows, stds: list[float], span: float) -> None:
    """Each bar's delta and verdict over it; many bars: the delta alone, upright, small (the
    verdict is the bar's colour, see the legend)."""
    crowded = len(x) > CROWDED_BARS
    for xi, r, s in zip(x, rows, stds, strict=True):
        d = r.delta
        y = d + s if d >= 0 else d - s
        note = f"{d:+.3f}" if crowded else f"{d:+.4f}\n{r.label}"
        ax.annotate(
            "baseline" if r.is_baseline else note,
            (xi, y),
            xytext=(0, 4 if d >= 0 else -4),
            textcoords="offset points",
            ha="center",
            va="bottom" if d >= 0 else "top",
            fontsize=6 if crowded else 8,
            rotation=90 if crowded else 0,
        )
    ax.set_ylim(-span * (2.5 if crowded else 1.5), span * (2.5 if crowded else 1.5))


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
        return None, value_groups(tracker, parent)


def plot_sweep(
    tracker: T.Tracker, parent: T.RunInfo, out_dir: Path | None = None, table: Table | None = None
) -> PlotResult:
    """Write every figure of one sweep to `out_dir` (PNGs; the store is not written). The
    delta figure uses `table` (the one the command printed), else the sweep's own."""
    from .table import sweep_table

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
    described: dict[str, str] = {}
    if baseline is not None:
        table = table if table is not None else sweep_table(tracker, parent)
        fig = figure_deltas(parent, table)
        if fig is None:
            result.notes.append("no finished variant: no delta figure")
        else:
            figs.append(("delta-best-val-loss", fig))
            described["delta-best-val-loss"] = verdicts_text(table)
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
    result.paths = [save_png(fig, out / f"{name}.png", described.get(name)) for name, fig in figs]
    return result


def verdicts_text(table: Table) -> str:
    """`verdicts: 0.1=better; 0.2=inconclusive`: what the delta figure's colours say."""
    return "verdicts: " + "; ".join(f"{r.value}={r.label}" for r in table.variants)
