"""The comparison table: one row per configuration against the baseline, with verdicts.

`Table` is what every command builds once and hands on: its rows are typed (`TableRow`,
each with a `Verdict`), it carries the settings it was decided with, the sentence that says
what its verdicts mean and the level of its intervals; `.to_frame()` is the pandas view the
exports write. Rows come from the runs in the store (`groups.py`: every counted seed, a
diverged one too), are decided by `judging.py` (anytime-valid intervals, simultaneous across
the rows, pooled where a check allows) and carry their training FLOPs and compute to target.

One meaning per cell: a variant row's seeds, best_val_loss, baseline_val_loss (the baseline
on those same seeds) and delta cover the same seeds, so best_val_loss - baseline_val_loss is
the delta; the baseline row shows the baseline on all its seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from .. import tracking as T
from ..tracking import Role, RunInfo
from . import compute
from .anytime import RowDecision
from .groups import (
    SEARCH,
    Group,
    history_of,
    history_sweeps,
    paired,
    read_curves,
    seed_losses,
    sweep_groups,
)
from .judging import Judged, describe, judge
from .settings import Settings, ci_label, legacy_looks
from .verdicts import Verdict

if TYPE_CHECKING:
    import pandas as pd

NAN = math.nan
MAX_TAG = 7900  # characters of a tag value MLflow keeps (8000)


@dataclass(frozen=True)
class TableRow:
    """One configuration against the baseline. `verdict` is the claim; `label` is what the
    table prints for it (`unstable (1/3 diverged)`, or the reason when nothing counted);
    `note` says where the numbers come from when they were reused from another sweep's runs."""

    knob: str
    value: str
    seeds: int  # the seeds the row's numbers cover (paired with the baseline)
    diverged: int  # the variant's diverged seeds (counted in the verdict, not in the means)
    best_val_loss: float
    best_val_loss_std: float
    baseline_val_loss: float  # the baseline on the same seeds
    delta: float
    delta_ci_low: float  # the interval the verdict used (simultaneous, anytime)
    delta_ci_high: float
    delta_pct: float
    pairing: str  # paired | paired, pooled | "" (nothing paired)
    pooled: bool
    p_value: float  # anytime-valid p-value of delta == 0 (min(1, 1/e))
    p_adjusted: float  # times the table's rows (Bonferroni)
    verdict: Verdict
    label: str
    seeds_needed: float  # inconclusive rows: inf for more than 200
    seed_list: str  # the seeds, e.g. "1,2,3"
    best_val_ppl: float
    final_train_loss: float
    train_val_gap: float
    best_step: float
    tokens_per_s: float
    wall_s: float
    params: float
    train_flops: float
    compute_to_target: float
    compute_to_target_low: float  # its seed-bootstrap interval
    compute_to_target_high: float
    state: str
    note: str
    run_ids: str

    @property
    def is_baseline(self) -> bool:
        return self.verdict is Verdict.BASELINE

    @property
    def to_target_label(self) -> str:
        from .to_target import format_ratio

        return format_ratio(
            self.compute_to_target, self.compute_to_target_low, self.compute_to_target_high
        )


COLUMNS = [f.name for f in fields(TableRow) if f.name != "label"]


@dataclass
class Table:
    """A sweep's rows (the baseline's first), how they were decided, and what they mean.
    `recorded` is set on a separate analysis: the sweep's own settings, which these are not."""

    rows: list[TableRow]
    settings: Settings
    legend: str
    ci_label: str
    baseline_mean: float = NAN
    sweep: str = ""
    sweep_run_id: str = ""
    judged: Judged | None = field(default=None, repr=False)
    baseline_seeds: list[int] = field(default_factory=list)
    history_ids: list[str] = field(default_factory=list)
    recorded: Settings | None = None
    groups: dict[str, Group] = field(default_factory=dict, repr=False)
    families: list[list[str]] = field(default_factory=list)  # the rows' values, by family

    @property
    def variants(self) -> list[TableRow]:
        return [r for r in self.rows if not r.is_baseline]

    @property
    def knob(self) -> str:
        return self.rows[0].knob if self.rows else ""

    @property
    def verdict_header(self) -> str:
        return "verdict" if self.recorded is None else "verdict (separate analysis)"

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

    def tags(self) -> dict[str, str]:
        """What a sweep records of its table: its settings, the baseline seeds the table
        used and the sweeps its history came from. Never for a separate analysis."""
        if self.recorded is not None:
            raise ValueError("a separate analysis is shown, never recorded")
        tags = {
            **self.settings.tags(),
            T.TAG_TABLE_SEEDS: ",".join(map(str, self.baseline_seeds)),
            T.TAG_HISTORY: ",".join(self.history_ids),
        }
        losses = json.dumps(seed_losses(list(self.groups.values())), separators=(",", ":"))
        if self.knob != SEARCH and len(losses) <= MAX_TAG:  # else history reads the runs
            tags[T.TAG_SEED_LOSSES] = losses
        families = json.dumps(self.families, separators=(",", ":"))
        if self.knob != SEARCH and len(families) <= MAX_TAG:  # a search's rows: candidates
            tags[T.TAG_FAMILIES] = families
        return tags

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


def _no_result(g: Group) -> str:
    """What a row without a counted seed prints: its states, and the first reason."""
    states = sorted({str(r.state) for r in g.runs})
    word = "/".join(states) or "no runs"
    reasons = sorted({r.tags.get(T.TAG_REASON, "") for r in g.runs} - {""})
    return word + (f": {reasons[0]}" if reasons else "")


def _verdict(g: Group, d: RowDecision) -> tuple[Verdict, str]:
    if d.verdict is Verdict.NO_RESULT:
        pruned = g.pruned()
        if pruned and g.knob == SEARCH:  # pruned early, not diverged: still a candidate
            step = pruned[0].tags.get(T.TAG_PRUNED_STEP, "?")
            return Verdict.SINGLE_SEED, f"single seed (pruned at step {step})"
        return Verdict.NO_RESULT, _no_result(g)
    return d.verdict, d.label


def _numbers(g: Group, seeds: list[int | str], base: Group | None) -> dict:
    """The cells that describe a row's runs on `seeds` (and the baseline on the same)."""
    counted = g.counted()
    runs = [counted[s] for s in seeds]
    losses = [r.metrics["best_val_loss"] for r in runs]
    base_runs = [base.counted()[s] for s in seeds] if base is not None else runs
    base_mean = _mean(base_runs, "best_val_loss")
    return {
        "seeds": len(runs),
        "best_val_loss": statistics.fmean(losses) if losses else NAN,
        "best_val_loss_std": statistics.stdev(losses) if len(losses) > 1 else NAN,
        "baseline_val_loss": base_mean,
        "seed_list": ",".join(map(str, seeds)),
        "best_val_ppl": _mean(runs, "best_val_ppl"),
        "final_train_loss": _mean(runs, "final_train_loss"),
        "train_val_gap": _mean(runs, "final_val_loss") - _mean(runs, "final_train_loss"),
        "best_step": _mean(runs, "best_step"),
        "tokens_per_s": _mean(runs, "train_tokens_per_s"),
        "wall_s": _mean(runs, "wall_s"),
        "params": _mean(runs, "params"),
        "train_flops": _flops(runs),
        "state": "/".join(sorted({str(r.state) for r in g.runs})),
        "run_ids": " ".join(r.run_id for r in g.runs),
        "_runs": runs,
        "_base_runs": base_runs,
    }


def _flops(runs: list[RunInfo]) -> float:
    vals = [v for v in (compute.train_flops(r) for r in runs) if math.isfinite(v)]
    return statistics.fmean(vals) if vals else NAN


def _finite_seeds(g: Group) -> list[int | str]:
    return [s for s, x in g.losses().items() if math.isfinite(x)]


def _needed(d: RowDecision) -> float:
    """seeds_needed as a number: inf for more than power.MAX_SEEDS, NaN when decided."""
    if d.verdict is not Verdict.INCONCLUSIVE:
        return NAN
    return math.inf if d.seeds_needed is None else float(d.seeds_needed)


def baseline_row(base: Group) -> TableRow:
    seeds = _finite_seeds(base)
    cells = _numbers(base, seeds, None)
    one = 1.0 if base.curves else NAN
    del cells["_runs"], cells["_base_runs"]
    return TableRow(
        knob=base.knob, value=base.value, diverged=len(base.counted()) - len(seeds),
        delta=0.0 if seeds else NAN, delta_ci_low=NAN, delta_ci_high=NAN,
        delta_pct=0.0 if seeds else NAN, pairing="", pooled=False, p_value=NAN,
        p_adjusted=NAN, verdict=Verdict.BASELINE, label=str(Verdict.BASELINE),
        seeds_needed=NAN, compute_to_target=one, compute_to_target_low=NAN,
        compute_to_target_high=NAN, note="", **cells,
    )  # fmt: skip


def variant_row(g: Group, d: RowDecision, base: Group, level: float) -> TableRow:
    """A variant's row: its numbers on the seeds its decision paired (all its finite seeds
    when none paired: then no delta)."""
    seeds: list[int | str] = list(d.seeds) if d.n_pairs else _finite_seeds(g)
    cells = _numbers(g, seeds, base if d.n_pairs else None)
    runs, base_runs = cells.pop("_runs"), cells.pop("_base_runs")
    if not d.n_pairs:
        cells["baseline_val_loss"] = NAN
    ctt = NAN, NAN, NAN
    if d.n_pairs:
        r = compute.row_to_target(base.curves, g.curves, base_runs, runs, list(d.seeds), level)
        ctt = r.ratio, r.low, r.high
    verdict, label = _verdict(g, d)
    reused = sorted(set(g.reused_from()))
    bmean = cells["baseline_val_loss"]
    return TableRow(
        knob=g.knob, value=g.value, diverged=d.diverged, delta=d.delta,
        delta_ci_low=d.ci_low, delta_ci_high=d.ci_high,
        delta_pct=100.0 * d.delta / bmean if bmean else NAN,
        pairing=("paired, pooled" if d.pooled else "paired") if d.n_pairs else "",
        pooled=d.pooled, p_value=d.p_value, p_adjusted=d.p_adjusted, verdict=verdict,
        label=label, seeds_needed=_needed(d),
        compute_to_target=ctt[0], compute_to_target_low=ctt[1], compute_to_target_high=ctt[2],
        note=("reused from " + ", ".join(reused)) if reused else "", **cells,
    )  # fmt: skip


def families_of(recorded: str | None, groups: list[Group]) -> list[list[int]]:
    """The groups (indices) of each family: those a sweep recorded (`sweep.families`: the
    values first tabled together), then one new family of the groups no table had yet.
    Nothing recorded (a first table, or a store from before families): one family."""
    try:
        known = [list(map(str, f)) for f in json.loads(recorded)] if recorded else []
    except (ValueError, TypeError):
        known = []
    where = {v: i for i, fam in enumerate(known) for v in fam}
    families: list[list[int]] = [[] for _ in known] + [[]]
    for i, g in enumerate(groups):
        families[where.get(g.value, len(known))].append(i)
    return [f for f in families if f]


def build_table(
    baseline: Group,
    groups: list[Group],
    settings: Settings | None = None,
    history: list[dict[int, float]] = (),
    *,
    recorded: Settings | None = None,
    legacy: bool = False,
    history_names: list[str] = (),
    families: list[list[int]] | None = None,
) -> Table:
    """Decide every group against the baseline and make the rows. `recorded`: the sweep's own
    settings when `settings` differ (a separate analysis); `families`: the groups decided
    together (indices; default: all of them)."""
    settings = settings or Settings()
    families = families if families is not None else [list(range(len(groups)))]
    judged = judge(baseline, groups, settings, list(history), families)
    judged.history_sweeps = list(history_names)
    rows = [baseline_row(baseline)]
    rows += [
        variant_row(g, d, baseline, settings.alpha)
        for g, d in zip(groups, judged.rows, strict=True)
    ]
    seeds = sorted(s for s in _finite_seeds(baseline) if isinstance(s, int))
    return Table(
        rows=rows,
        settings=settings,
        legend=describe(settings, judged, seeds, recorded=recorded, legacy=legacy),
        ci_label=ci_label(settings.alpha),
        baseline_mean=rows[0].best_val_loss,
        judged=judged,
        baseline_seeds=seeds,
        recorded=recorded,
        groups={g.value: g for g in groups},
        families=[[groups[i].value for i in f] for f in families if f],
    )


def sweep_table(
    tracker: T.Tracker, parent: RunInfo, alpha: float | None = None, margin: float | None = None
) -> Table:
    """The table of a sweep, decided with the alpha and margin recorded with it; given other
    values, a separate analysis that says so (nothing is recorded either way)."""
    recorded = Settings.recorded(parent)
    settings = recorded.given(alpha, margin)
    baseline, groups = sweep_groups(tracker, parent)
    for g in (baseline, *groups):
        g.curves = read_curves(tracker, g)
    sweeps = [] if parent.tags.get(T.TAG_ROLE) == Role.SEARCH else history_sweeps(tracker, parent)
    base = {s: x for s, x in paired(baseline.losses()).items() if math.isfinite(x)}
    table = build_table(
        baseline,
        groups,
        settings,
        history_of(tracker, sweeps, base),
        recorded=recorded if settings != recorded else None,
        legacy=legacy_looks(parent),
        history_names=[s.name for s in sweeps],
        families=families_of(parent.tags.get(T.TAG_FAMILIES), groups),
    )
    table.history_ids = [s.run_id for s in sweeps]
    table.sweep = parent.name
    table.sweep_run_id = parent.run_id
    return table
