"""Judging a table's rows (`anytime.decide_table` on the counted seeds), and the sentence under
the table that says how they were judged: the method, the level, pooling, the baseline seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .anytime import OWN_SHARE, RowDecision, decide_table
from .groups import Group, paired
from .pooling import POOL_SEEDS
from .settings import Settings, ci_percent


@dataclass
class Judged:
    """One decision per group (in order), and what they were decided with."""

    rows: list[RowDecision]
    history_rows: int = 0  # earlier rows against this baseline offered for pooling
    history_sweeps: list[str] = field(default_factory=list)  # their sweeps' names
    families: list[int] = field(default_factory=list)  # rows per family (one: all of them)

    @property
    def pooled(self) -> int:
        return sum(d.pooled for d in self.rows)


def judge(
    base: Group,
    groups: list[Group],
    settings: Settings,
    history: list[dict[int, float]] = (),
    families: list[list[int]] | None = None,
) -> Judged:
    """Every group's verdict against the baseline: every counted seed (a diverged one as NaN),
    the rows of each family together (K = the family's rows; `families`: indices into
    groups, default one family of all), with the history offered for pooling."""
    families = families if families is not None else [list(range(len(groups)))]
    base_losses = paired(base.losses())
    decided: dict[int, RowDecision] = {}
    for family in families:
        rows = decide_table(
            base_losses,
            [paired(groups[i].losses()) for i in family],
            settings.alpha,
            settings.margin,
            list(history),
        )
        decided.update(zip(family, rows, strict=True))
    rows = [decided[i] for i in range(len(groups))]
    return Judged(rows, len(history), families=[len(f) for f in families if f])


def describe(
    settings: Settings,
    judged: Judged,
    baseline_seeds: list[int],
    *,
    recorded: Settings | None = None,
    legacy: bool = False,
) -> str:
    """The sentence under a table: what its verdicts mean, with the settings, the level, the
    pooling and the baseline seeds used. `recorded`: the sweep's own settings, when these
    are another (a separate analysis); `legacy`: seeds were added under the old schedule."""
    a, m, k = settings.alpha, settings.margin, max(len(judged.rows), 1)
    sizes = judged.families or [k]
    text = ""
    if recorded is not None:
        text += (
            f"SEPARATE ANALYSIS with {settings.text()}: not this sweep's recorded verdicts "
            f"({recorded.text()}, fixed at its first table; `sweep table` without --margin/"
            "--alpha shows them). "
        )
    per_row = f"{ci_percent(a / k)} per row (Bonferroni over the {k} rows)" if k > 1 else ""
    if len(sizes) > 1:  # rows added after the first table: each addition its own family
        levels = ", ".join(f"{n} row{'s' if n > 1 else ''} at {ci_percent(a / n)}" for n in sizes)
        per_row = (
            f"Bonferroni within each family of rows first tabled together ({levels}: a row added "
            "later never changes the level of one decided before it)"
        )
    scope = " of a family" if len(sizes) > 1 else ""
    text += (
        "Verdicts hold at every look: each row's interval is an anytime-valid confidence "
        "sequence (Bayes-factor t, Wang & Ramdas 2023) for the mean paired difference in best "
        f"val loss, variant minus baseline seed by seed, {per_row or 'at ' + ci_percent(a)}, "
        f"so with chance >= {ci_percent(a)} every interval{scope} holds its true delta however "
        "often "
        "the table is looked at and however many seeds are added. "
        f"better/worse: the interval lies below/above 0 (p_adj <= {a:g}; p_adj = min(1, K/e), "
        "e the row's running evidence against no difference, an anytime p-value times K); "
        f"equivalent: the interval lies inside ±{m:g} nats; inconclusive: neither yet, "
        "seeds_needed: the seeds at which a look settles the row with 80% chance at its level; "
        "single seed: one pair cannot be told from noise (a candidate); unstable (k/n "
        "diverged): k of the variant's n seeds diverged, counted, never better or equivalent "
        "(worse if its finite seeds already say so). "
    )
    text += _pooling(judged)
    seeds = ",".join(map(str, baseline_seeds)) or "none"
    text += (
        f"Baseline seeds {seeds}; baseline_val_loss is the baseline on each row's own seeds, "
        "so best_val_loss - baseline_val_loss = delta. compute_to_target: training FLOPs to "
        "reach the baseline's best val loss on the row's seeds (interpolated between evals), "
        f"relative to the baseline; ≈1.00x when its {ci_percent(a)} seed-bootstrap interval "
        "covers 1."
    )
    if legacy:
        text += (
            " This sweep added seeds until clear under the earlier fixed schedule (tag "
            "sweep.sequential): its table is decided anytime now, which holds for those seeds "
            "too."
        )
    return text


def _pooling(judged: Judged) -> str:
    """Which rows pooled the noise scale, and with what."""
    rows = len(judged.rows)
    if not judged.pooled:
        if rows < 2 and not judged.history_rows:
            return "Each row's noise scale is its own (nothing to pool with). "
        return (
            "No row pooled its noise scale with others (too few seeds, or the F check "
            "refused it): each row's own. "
        )
    hist = ""
    if judged.history_rows:
        names = ", ".join(judged.history_sweeps)
        hist = f" and {judged.history_rows} earlier rows against this baseline ({names})"
    pools = (rows >= 2) + bool(judged.history_rows)
    split = f", split between {pools} pools" if pools > 1 else ""
    return (
        f"Noise scale pooled (pairing `paired, pooled`) for {judged.pooled} of {rows} rows: "
        f"every row's first {POOL_SEEDS} seeds{hist}, where an F check allows "
        f"({100 * (1 - OWN_SHARE):g}% of a row's level{split}; its own sequence keeps "
        f"{100 * OWN_SHARE:g}%). "
    )
