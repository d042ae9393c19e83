"""Verdicts: did a change help? The statistics behind one row of a comparison table.

A row compares a variant's best validation loss with the baseline's, seed by seed; lower
loss is better. Inputs are ``{seed: best val loss}`` dicts. Everything here is pure
(standard library and scipy.special), so the orchestrator, the report and the tests
run the same decision code.

Differences (`compare`)
    *Paired t* (the normal case). Ablations, confirmations and seeded baselines share seeds
    1..N, so the variant's seed k is compared with the baseline's seed k. With two or more
    shared seeds, the differences d_k = variant_k - baseline_k over the shared seeds only
    give delta = mean(d), se = sd(d)/sqrt(n), df = n - 1, the interval
    delta ± t(1 - alpha/2, df)·se and the two-sided p-value of H0: E[d] = 0. Pairing cancels
    what a seed does to both runs (data order, initialisation). Assumes the differences
    are independent draws, roughly normal.
    *Welch t* (fewer than two shared seeds, two or more on each side): delta =
    mean(variant) - mean(baseline), se = sqrt(s_b²/n_b + s_v²/n_v), df by Welch–Satterthwaite.
    Assumes independent, roughly normal losses on each side; the variances may differ.
    *Single seed* (fewer than two on either side): delta only (over the shared seeds if
    any); no interval, no p-value: one run cannot be told from seed noise.
    *Zero spread* (all differences identical, e.g. a bit-identical variant) is exact:
    interval [d, d], p = 1 when d == 0, else 0; no NaN, no warning.

Decisions (`decide`), at a test level that is alpha for a fixed number of seeds
    *equivalent*: the (1 - level) interval lies inside [-margin, +margin]: two one-sided
    tests (TOST), each at level/2. Using the interval the table shows (rather than the
    1 - 2·level one of an exact TOST) is conservative, but keeps one interval per row.
    Checked first: a real difference smaller than the margin is not worth a knob.
    *better* / *worse*: the Holm-adjusted p-value is below level and the interval excludes
    0; a negative delta (lower loss) is better. Holm's step-down adjustment across the
    table's variant rows keeps the chance that ANY row is wrongly called better or worse
    (the family-wise error) at level.
    *inconclusive*: neither; `seeds_needed` estimates the seeds per side (pairs, when
    paired) that would settle it. With s the SD of the differences (paired) or
    sqrt(s_b² + s_v²) (unpaired, equal seeds per side), so that se(n) = s/sqrt(n), it is
    the smallest n with  sqrt(n)·D/s >= t(1 - level/2, df(n)) + t(0.80, df(n)),  i.e. 80%
    power, taking the observed delta and SD as the truth, where D = |delta| (the interval
    comes off 0) or D = margin - |delta| when |delta| < margin (the interval fits inside
    the margin). The smaller n of the two wins, raised to at least one more than now;
    df(n) = n - 1 paired, 2(n - 1) unpaired. The t quantiles depend on n, so n starts at
    the normal-quantile solution ((z + z_0.80)·s/D)² (a lower bound) and steps up until the
    inequality holds. None means more than MAX_SEEDS. A rough guide: Holm across many rows
    and the smaller levels of sequential looks ask for somewhat more.

Margin
    DEFAULT_MARGIN = 0.02 nats of best val loss: exp(0.02) ≈ 1.02, a 2% change in
    perplexity, about the smallest change of a character model worth keeping a knob for,
    and small next to the unpaired seed-to-seed spread of short runs (0.04–0.07 in the
    README's dropout table), so "equivalent" is a claim that pairing and seeds must earn.

Adding seeds until clear (`sequential_level`, `decide_look`)
    Testing at alpha after every added seed and stopping at the first small p-value
    inflates false positives (the tests measure it). Here the looks are fixed in advance,
    n = n0, n0 + 1, ..., max_seeds, so n_looks = max_seeds - n0 + 1, and look k of K tests
    at the increment of a Lan–DeMets Pocock-type alpha-spending function,
        alpha_k = f(k/K) - f((k-1)/K),   f(t) = alpha·ln(1 + (e - 1)·t),   sum = alpha.
    Valid by the union bound: a false better/worse happens at some look, and each look's
    test is an ordinary fixed-n test at level alpha_k, whatever the dependence between
    looks and whatever made us stop. Within a look, Holm at alpha_k runs over all K rows:
    rows already called better/worse enter with p = 0, rows already equivalent with p = 1
    (the sequential rejection principle, Goeman & Solari 2010: the first false call at
    look k needs a true-null row with p <= alpha_k/m0, chance <= alpha_k). Equivalence at
    look k uses the 1 - alpha_k interval, so a false "equivalent" has chance <= alpha/2
    per row over all looks, by the same bound. The union bound ignores how correlated the
    looks are, so the rule is conservative: a few more seeds for small effects, in return
    for needing no model of that correlation. Pocock-type (near-equal levels per look)
    rather than O'Brien–Fleming-type (almost nothing early): seeds are expensive and a
    large effect should stop early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from scipy import special

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.02  # nats of best val loss: exp(0.02) ≈ 2% in perplexity (module docstring)
POWER = 0.80  # target power of the seeds_needed estimate
MAX_SEEDS = 1000  # seeds_needed above this is reported as None ("more than 1000")
NAN = math.nan


class Verdict(StrEnum):
    BASELINE = "baseline"
    BETTER = "better"
    WORSE = "worse"
    EQUIVALENT = "equivalent"
    INCONCLUSIVE = "inconclusive"
    SINGLE_SEED = "single seed"
    UNSTABLE = "unstable"  # seeds diverged
    NO_RESULT = "no result"  # nothing finished: the row says why (failed, killed, running)


FINAL = (Verdict.BETTER, Verdict.WORSE, Verdict.EQUIVALENT)


@dataclass(frozen=True)
class Comparison:
    """One variant against the baseline; the interval is at 1 - alpha (NaN for one seed)."""

    n_base: int
    n_variant: int
    n_pairs: int  # seeds both sides have
    pairing: str  # "paired" | "unpaired" | "" (single seed)
    delta: float  # mean of variant - baseline (over the shared seeds when paired)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, H0: delta == 0
    sd: float  # SD of the differences (paired) or sqrt(s_b² + s_v²) (unpaired)
    se: float  # standard error of delta
    df: float  # degrees of freedom of the t distribution used
    alpha: float = DEFAULT_ALPHA

    def interval(self, level: float) -> tuple[float, float]:
        """The (1 - level) interval of delta."""
        return _interval(self.delta, self.se, self.df, level)


@dataclass(frozen=True)
class Row:
    """A Comparison with its verdict; ci_low/ci_high is the (1 - level) interval it used."""

    comparison: Comparison
    p_adjusted: float  # Holm across the rows decided together
    verdict: Verdict
    seeds_needed: int | None  # INCONCLUSIVE only; None there means more than MAX_SEEDS
    level: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Look:
    """The rows after one look, which of them still need a seed, and the look's level."""

    rows: list[Row]
    needs_seeds: list[bool]
    level: float


def _interval(delta: float, se: float, df: float, level: float) -> tuple[float, float]:
    if math.isnan(se):
        return NAN, NAN
    if se == 0:
        return delta, delta
    half = float(special.stdtrit(df, 1 - level / 2)) * se
    return delta - half, delta + half


def _check(alpha: float, level: float | None = None, margin: float = 0.0) -> None:
    for name, value in (("alpha", alpha), ("level", alpha if level is None else level)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")


def _losses(values: Mapping[int, float], side: str) -> dict[int, float]:
    out = {}
    for seed, loss in values.items():
        if not math.isfinite(loss):
            raise ValueError(f"{side} seed {seed}: best val loss {loss!r} is not finite")
        out[seed] = float(loss)
    return out


def _mean_var(x: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (math.fsum); exactly (x[0], 0.0) when all values are equal."""
    if min(x) == max(x):
        return x[0], 0.0
    mean = math.fsum(x) / len(x)
    return mean, math.fsum((xi - mean) ** 2 for xi in x) / (len(x) - 1)


def _p_value(delta: float, se: float, df: float) -> float:
    if se == 0:
        return 1.0 if delta == 0 else 0.0
    return min(1.0, 2 * float(special.stdtr(df, -abs(delta / se))))


def compare(
    base: Mapping[int, float], variant: Mapping[int, float], alpha: float = DEFAULT_ALPHA
) -> Comparison:
    """Paired t over the shared seeds (2+), else Welch t (2+ per side), else single seed.

    A non-finite loss (a diverged seed) raises ValueError: dropping it would flatter the
    variant, so the caller decides how to report it.
    """
    _check(alpha)
    b, v = _losses(base, "baseline"), _losses(variant, "variant")
    shared = sorted(b.keys() & v.keys())
    diffs = [v[s] - b[s] for s in shared]
    counts = {"n_base": len(b), "n_variant": len(v), "n_pairs": len(shared), "alpha": alpha}
    if len(shared) >= 2:
        delta, var = _mean_var(diffs)
        sd, df, pairing = math.sqrt(var), len(shared) - 1.0, "paired"
        se = sd / math.sqrt(len(shared))
    elif len(b) >= 2 and len(v) >= 2:
        (mb, vb), (mv, vv) = _mean_var(list(b.values())), _mean_var(list(v.values()))
        delta, pairing = mv - mb, "unpaired"
        wb, wv = vb / len(b), vv / len(v)
        se, sd = math.sqrt(wb + wv), math.sqrt(vb + vv)
        if wb + wv == 0:
            df = len(b) + len(v) - 2.0
        else:  # Welch–Satterthwaite
            df = (wb + wv) ** 2 / (wb**2 / (len(b) - 1) + wv**2 / (len(v) - 1))
    else:
        if diffs:
            delta = _mean_var(diffs)[0]
        elif b and v:
            delta = _mean_var(list(v.values()))[0] - _mean_var(list(b.values()))[0]
        else:
            delta = NAN
        nan = {"ci_low": NAN, "ci_high": NAN, "p_value": NAN, "sd": NAN, "se": NAN, "df": NAN}
        return Comparison(**counts, pairing="", delta=delta, **nan)
    lo, hi = _interval(delta, se, df, alpha)
    p = _p_value(delta, se, df)
    return Comparison(**counts, pairing=pairing, delta=delta, ci_low=lo, ci_high=hi, p_value=p,
                      sd=sd, se=se, df=df)  # fmt: skip


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values: monotone, capped at 1; NaN passes through, uncounted."""
    p = [float(x) for x in p_values]
    for x in p:
        if not (math.isnan(x) or 0 <= x <= 1):
            raise ValueError(f"p-values must lie in [0, 1] or be NaN, got {x!r}")
    order = sorted((i for i, x in enumerate(p) if not math.isnan(x)), key=lambda i: p[i])
    out, running = list(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def _n_for(distance: float, sd: float, level: float, paired: bool) -> int | None:
    """Smallest n with sqrt(n)·distance/sd >= t(1 - level/2, df(n)) + t(POWER, df(n))."""
    # t quantiles exceed normal ones, so the normal-quantile n is a lower bound; from there
    # step n up (the t quantiles shrink as n grows) until the inequality holds.
    z = special.ndtri(1 - level / 2) + special.ndtri(POWER)
    n = max(2, math.ceil((z * sd / distance) ** 2))
    while n <= MAX_SEEDS:
        df = n - 1 if paired else 2 * (n - 1)
        if math.sqrt(n) * distance / sd >= special.stdtrit(df, 1 - level / 2) + special.stdtrit(
            df, POWER
        ):
            return n
        n += 1
    return None


def _seeds_needed(c: Comparison, level: float, margin: float) -> int | None:
    if not c.sd > 0:
        return None
    paired = c.pairing == "paired"
    now = c.n_pairs if paired else max(c.n_base, c.n_variant)
    size = abs(c.delta)
    distances = [size] + ([margin - size] if size < margin else [])
    ns = [n for d in distances if d > 0 and (n := _n_for(d, c.sd, level, paired)) is not None]
    if not ns:
        return None
    n = max(min(ns), now + 1)
    return n if n <= MAX_SEEDS else None


def _judge(c: Comparison, p_adjusted: float, level: float, margin: float) -> Row:
    lo, hi = c.interval(level)
    needed = None
    if c.pairing == "":
        verdict = Verdict.SINGLE_SEED
    elif -margin <= lo and hi <= margin:
        verdict = Verdict.EQUIVALENT
    elif p_adjusted < level and (hi < 0 or lo > 0):
        verdict = Verdict.BETTER if c.delta < 0 else Verdict.WORSE
    else:
        verdict, needed = Verdict.INCONCLUSIVE, _seeds_needed(c, level, margin)
    return Row(c, p_adjusted, verdict, needed, level, lo, hi)


def decide(
    rows: Sequence[Comparison],
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    level: float | None = None,
) -> list[Row]:
    """Verdicts for a table's variant rows, Holm across them, at level (default: alpha)."""
    _check(alpha, level, margin)
    level = alpha if level is None else level
    adjusted = holm([c.p_value for c in rows])
    return [_judge(c, p, level, margin) for c, p in zip(rows, adjusted, strict=True)]


def sequential_level(look: int, n_looks: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Level of look `look` (1-based) of n_looks: the Pocock-type alpha-spending increment."""
    _check(alpha)
    if n_looks < 1 or not 1 <= look <= n_looks:
        raise ValueError(f"need 1 <= look <= n_looks, got look={look!r}, n_looks={n_looks!r}")

    def spent(t: float) -> float:
        return alpha if t >= 1 else alpha * math.log1p((math.e - 1) * t)

    return spent(look / n_looks) - spent((look - 1) / n_looks)


def decide_look(
    base: Mapping[int, float],
    variants: Sequence[Mapping[int, float]],
    look: int,
    n_looks: int,
    previous: Sequence[Row] | None = None,
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
) -> Look:
    """One look of "add seeds until clear" over a baseline and K variants.

    Call after each added seed (look 1 at n0 seeds, ..., look n_looks at max_seeds) with
    the previous look's rows; rows decided earlier (better, worse, equivalent) come back
    unchanged and get no more seeds. needs_seeds is False for every row at the last look.
    """
    _check(alpha, margin=margin)
    level = sequential_level(look, n_looks, alpha)
    if previous is not None and len(previous) != len(variants):
        raise ValueError(f"previous has {len(previous)} rows for {len(variants)} variants")
    before = list(previous) if previous is not None else [None] * len(variants)
    comparisons = [compare(base, v, alpha) for v in variants]
    ps = []
    for c, old in zip(comparisons, before, strict=True):
        if old is not None and old.verdict in FINAL:
            ps.append(1.0 if old.verdict == Verdict.EQUIVALENT else 0.0)
        else:
            ps.append(1.0 if math.isnan(c.p_value) else c.p_value)
    adjusted = holm(ps)
    rows = [
        old if old is not None and old.verdict in FINAL else _judge(c, p, level, margin)
        for c, old, p in zip(comparisons, before, adjusted, strict=True)
    ]
    needs = [r.verdict not in FINAL and look < n_looks for r in rows]
    return Look(rows, needs, level)
