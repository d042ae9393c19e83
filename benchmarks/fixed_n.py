"""The fixed-n verdicts that `sweep` shipped before issue 16, kept for benchmarks/verdicts.py's
"before" column: paired t (Welch where seeds differ) with Holm across a table's rows, and the
Lan–DeMets Pocock-type alpha spending that `--until-clear` replayed look by look. Not used by
the orchestrator (orchestrator/results/anytime.py decides tables now).

compare: paired t over the shared seeds (2+), else Welch t, else single seed. decide: the
interval at level inside ± margin -> equivalent; Holm-adjusted p < level with the interval
excluding 0 -> better/worse; else inconclusive. sequential_level: look k of K at
f(k/K) - f((k-1)/K), f(t) = alpha·ln(1 + (e - 1)·t). decide_look: one look of until-clear,
rows decided earlier kept, Holm within the look (decided rows enter with p = 0 or 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import special

from orchestrator.results.verdicts import Verdict

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.02
POWER = 0.80  # target power of the seeds_needed estimate
MAX_SEEDS = 1000  # seeds_needed above this is reported as None ("more than 1000")
NAN = math.nan


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
