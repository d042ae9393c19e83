"""Verdicts that hold at every look: anytime-valid confidence sequences for each row's paired
mean difference, simultaneous across the table's rows, with every seed counted.

Method: the scale-invariant Bayes-factor t confidence sequence (a normal prior on the
standardised effect, the right Haar prior on the scale: Lai's 1976 construction with its flat
prior on the mean replaced by a normal one, as in Wang & Ramdas 2023), made simultaneous
across a table's K rows by Bonferroni, with the noise scale pooled across the rows and the
baseline's history where a check allows. Tuned and checked by benchmarks/verdicts.py.

The evidence
    For one row, its paired differences (variant minus baseline best val loss, seed by seed)
    are independent normal draws with mean delta and an unknown SD. For a null value mu0,
    BF_t(mu0) is the Bayes factor of the first t observations with a N(0, g) prior on the
    standardised effect (delta - mu0)/sd, the right Haar prior d(sd)/sd on the scale, and
    flat priors on any other row's mean (closed form in `power.py`). It is the likelihood
    ratio of the data's maximal invariant under rescaling (and shifting the other rows), so
    under the null it is a test martingale in that reduced filtration (Hendriksen, de Heide
    & Grünwald 2021, "Optional stopping with Bayes factors", Bayesian Analysis 16(3);
    Pérez-Ortiz, Lardy, de Heide & Grünwald 2024, "E-statistics, group invariance and
    anytime-valid testing", Ann. Statist. 52(4); Wang & Ramdas, "Anytime-valid t-tests and
    confidence sequences for Gaussian means with unknown variance", arXiv:2310.03722).
    Ville's inequality bounds the chance that it EVER reaches 1/a by a. That is a statement
    about the whole path of one fixed sequence of observations, so it holds whatever decides
    when to look or to stop: other rows' data, the margin, a person. (Such stopping rules are
    not stopping times of the reduced filtration, so a stopped BF need not be an e-value, and
    BFs are never averaged across rows here: no e-Holm, no e-BH.) Hence {mu0 : BF_t(mu0) <
    1/a} holds the true delta at every t at once with chance >= 1 - a, a confidence sequence
    (Howard, Ramdas, McAuliffe & Sekhon 2021, Ann. Statist. 49(2)), and so does its running
    intersection over t, which is what a row shows: a decided row stays decided (unless a
    later seed diverges, see below).

Up to three sequences per row, one level per table (multiplicity)
    Each row's interval is the intersection of its *own* sequence (its differences in seed
    order: valid whatever the other rows' noise) at level w·alpha/K and, while the row passes
    the checks below, its *pooled* sequences (`pooling.py`): one over the table's rows (the
    first POOL_SEEDS seeds the rows have, of every row, then the row's own later seeds) when
    K >= 2, and one that adds the history (joining no faster than the table's own degrees of
    freedom) when there is a history array of two values or more; they share the rest,
    (1 - w)·alpha/K, equally. w = OWN_SHARE. Which sequences a row has is fixed by the
    table's shape, never by its values; the history gets a sequence of its own so that a
    history the check refuses (say, an earlier sweep's bit-near-identical row, much quieter
    than seed noise) leaves the table's own pooling in place. A row's chance of ever
    missing its delta is then at most alpha/K (union bound), and of any row ever missing at
    most alpha, whatever the rows' dependence (they share the baseline). Every claim is read
    off these intervals: better (below 0), worse (above 0), equivalent (inside ± margin), so
    a false claim of any kind needs a miss and the family-wise chance of any false claim
    over all looks is at most alpha. Bonferroni on simultaneous intervals rather than Holm
    on e-values: it covers equivalence and the sign of a difference together, needs no
    e-value at a stopping time, and for the usual table of one real effect among null rows
    Holm would give nothing more. With one row and nothing to pool with there is one
    sequence, at alpha.

The pooling checks
    The pooled sequence assumes one run-noise variance for every configuration, history
    included. A row uses it only while (one-sided F tests, scipy.special.fdtr, p >= GATE_P) its
    own difference variance is not larger than that of the rest of its pool, and the
    history's is not smaller than that of the table's rows: the directions that would make
    the pooled interval too narrow. The checks choose among valid sequences, so under
    equal noise they cost nothing in validity; under unequal noise they, and the history's
    limited weight, keep the false-claim rate under alpha in the benchmark's cases. The own
    sequence is always there, so a row that fails keeps a valid, wider, interval;
    `RowDecision.pooled` says whether a pooled one was used.

Every seed counted
    A non-finite variant loss (a diverged seed: a run that failed at a training step, or a
    finished run without a finite best val loss; `groups.py` says which runs count) is part
    of the row. The row reads `unstable (k/n diverged)` unless its interval on the finite
    pairs lies above 0: then it is `worse` (labelled `worse (k/n diverged)`), since runs that
    diverge only add to a variant's losses. Never better or equivalent: the finite seeds are
    a selected subset (divergence is informative), so they cannot speak for the variant. A
    seed on which the baseline diverged has no pair for any row: it is left out of every
    row, counted in `base_diverged`, and every row's label says so (`better (baseline 1/4
    diverged)`). The verdict names are `verdicts.Verdict`, the one enum of the package.

p-values
    `RowDecision.p_value` = min(1, 1/e), e the running evidence above (the larger of the
    weighted Bayes factors of the row's two sequences): an anytime-valid p-value (the chance
    that it ever falls to a or below is at most a, by Ville and the union bound over the two
    sequences); `p_adjusted` = min(1, K·p), Bonferroni over the K rows, at most alpha exactly
    when the row's interval excluded 0 at some look.

Assumptions: a row's differences are independent normal draws across seeds; the pooled
sequence also needs equal run-noise variance (checked as above); a table's rows (K), its
history and which rows have its first seeds are fixed at its first look, and seeds come in
increasing order. One pair: `single seed` (its delta is against the baseline on that same
seed); none: `no result`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special  # F's cdf and sf, without importing scipy.stats (0.4 s)

from . import power
from .pooling import Fit, history_fits, own_fit, pooled_fits
from .verdicts import DEFAULT_ALPHA, DEFAULT_MARGIN, Verdict, row_label

PRIOR_G = 2.0  # g: prior variance of the standardised effect (power is flat for g in 1..3)
OWN_SHARE = 0.05  # w: the share of a row's alpha/K spent on its own-variance sequence
GATE_P = 0.05  # pooled only while the checks' F tests have p >= this

CODES = tuple(Verdict)  # verdict_codes() returns indices into this


@dataclass(frozen=True)
class RowDecision:
    verdict: Verdict
    delta: float  # mean paired difference over the seeds used (NaN if none)
    ci_low: float  # the interval the verdict used (running intersection, after multiplicity)
    ci_high: float
    level: float  # the row's share of alpha: its interval misses at any look w.p. <= level
    e_value: float  # running max evidence against delta == 0; better/worse iff >= K/alpha
    n_pairs: int
    seeds: tuple[int, ...]  # the seeds both sides share that were used
    diverged: int  # variant seeds with a non-finite loss
    n_total: int  # all the variant's seeds
    pooled: bool  # whether the pooled noise scale was used at this look
    # INCONCLUSIVE only: seeds at which a look settles it w.p. 80% (None: more than 200)
    seeds_needed: int | None
    label: str
    base_diverged: int = 0  # baseline seeds with a non-finite loss (left out of every row)
    rows: int = 1  # K, the rows the table's alpha is split over

    @property
    def p_value(self) -> float:
        """Anytime-valid p-value of delta == 0 for this row: min(1, 1/e). The chance that it
        EVER falls to a or below is at most a (Ville, and a union bound over the row's two
        sequences); NaN below two pairs."""
        if self.n_pairs < 2:
            return math.nan
        return 1.0 if self.e_value <= 1 else 1.0 / self.e_value

    @property
    def p_adjusted(self) -> float:
        """min(1, K·p): Bonferroni over the table's K rows; better/worse iff <= alpha (when
        the interval excludes 0 at some look)."""
        return min(1.0, self.rows * self.p_value) if self.n_pairs >= 2 else math.nan


@dataclass(frozen=True)
class Paths:
    """Every row's interval and evidence at every prefix of the seed axis: arrays [R, K, S]."""

    lo: np.ndarray
    hi: np.ndarray
    evidence: np.ndarray
    pooled: np.ndarray
    sd: np.ndarray  # SD of a paired difference of the fit in use (for seeds_needed)
    nu: np.ndarray  # its residual df
    level: np.ndarray  # the level of its sequence
    n_pairs: np.ndarray  # [K, S]
    own_sd: np.ndarray  # the same three for the row's own sequence
    own_nu: np.ndarray
    own_level: float


def interval(fit: Fit, level: float, g: float):
    """The fit's interval at this level and its Bayes factor against delta == 0."""
    gp = g * fit.unit
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(fit.nu >= 1, fit.rss / np.maximum(fit.nu, 1), 0.0)
        hw = power.crit(1.0 + gp / fit.v, fit.nu, level) * np.sqrt(fit.v * s2)
        hw = np.where(np.isnan(hw), np.inf, hw)  # inf * 0: no spread but no finite bound
        b2 = fit.centre**2
        h = 1.0 + gp / fit.v
        num, den = b2 / fit.v + fit.rss, b2 / (fit.v * h) + fit.rss
        log_bf = -0.5 * np.log(h) + 0.5 * (fit.nu + 1) * np.where(num > 0, np.log(num / den), 0)
    e = np.where((fit.nu >= 1) & np.isfinite(fit.centre), np.exp(np.minimum(log_bf, 700)), 0.0)
    return fit.centre - hw, fit.centre + hw, e


def _history_check(d, mask, hist, hmask) -> np.ndarray | bool:
    """[R, S]: the history's difference variance is not significantly smaller than the
    table's own (one-sided F test, p >= GATE_P); True without history."""
    fits = history_fits(d, mask, hist, hmask) if hist is not None and hmask is not None else None
    if fits is None:
        return True
    table, hist_only = fits
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = hist_only.diff_var() / table.diff_var()
    p = special.fdtr(np.maximum(hist_only.nu, 1), np.maximum(table.nu, 1), np.maximum(ratio, 0))
    return (table.nu >= 1) & (hist_only.nu >= 1) & (p >= GATE_P)


def table_paths(
    d: np.ndarray,
    mask: np.ndarray,
    hist: np.ndarray | None = None,
    hmask: np.ndarray | None = None,
    alpha: float = DEFAULT_ALPHA,
    g: float = PRIOR_G,
) -> Paths:
    """The batched core of `decide_table`: d [R, K, S] paired differences, mask [K, S] the
    finite pairs, hist [R, H, S] / hmask [H, S] the history on the same seed positions."""
    R, K, S = d.shape
    # a row's pooled sequences, fixed by the table's shape (not its values): the table's
    # rows (another row to pool with), and the rows with the history (a history array with
    # two values or more); each gets an equal share of what the own sequence leaves
    has_hist = hmask is not None and bool((np.asarray(hmask).sum(axis=1) >= 2).any())
    pools = ([(None, None)] if K >= 2 else []) + ([(hist, hmask)] if has_hist else [])
    a_own = alpha / K * (OWN_SHARE if pools else 1.0)
    share = (1.0 - OWN_SHARE) / max(len(pools), 1)
    a_pool = alpha / K * share
    own = own_fit(d, mask)
    lo, hi, e = interval(own, a_own, g)
    e = e * (OWN_SHARE if pools else 1.0)
    sd = np.sqrt(own.diff_var())
    nu = np.array(own.nu, dtype=float)
    level = np.full((R, K, S), a_own)
    pooled = np.zeros((R, K, S), dtype=bool)
    for h, hm in pools:
        history_ok = _history_check(d, mask, h, hm)
        for k in range(K):
            got = _pooled_row(d, mask, k, h, hm, own, a_pool, share, g, history_ok)
            if got is None:
                continue
            use, plo, phi, pe, fit = got
            lo[:, k] = np.where(use, np.fmax(lo[:, k], plo), lo[:, k])
            hi[:, k] = np.where(use, np.fmin(hi[:, k], phi), hi[:, k])
            e[:, k] = np.where(use, np.fmax(e[:, k], pe), e[:, k])
            sd[:, k] = np.where(use, np.sqrt(fit.diff_var()), sd[:, k])
            nu[:, k] = np.where(use, fit.nu, nu[:, k])
            level[:, k] = np.where(use, a_pool, level[:, k])
            pooled[:, k] |= use
    run_lo, run_hi = np.fmax.accumulate(lo, axis=-1), np.fmin.accumulate(hi, axis=-1)
    empty = run_lo > run_hi  # the data contradict the model (chance < alpha): show this look's
    run_lo, run_hi = np.where(empty, lo, run_lo), np.where(empty, hi, run_hi)
    n_pairs = np.cumsum(mask, axis=-1)
    evidence = np.maximum.accumulate(e, axis=-1)
    own_sd, own_nu = np.sqrt(own.diff_var()), np.array(own.nu, dtype=float)
    return Paths(run_lo, run_hi, evidence, pooled, sd, nu, level, n_pairs, own_sd, own_nu, a_own)


def _pooled_row(d, mask, k, hist, hmask, own: Fit, a_pool, share, g, history_ok):
    """Row k's pooled sequence (with this history, or none): where the checks let it be used
    (its own difference variance not larger than the rest of its pool's, the history's not
    smaller than the table's), its interval at a_pool, its evidence weighted by its share of
    alpha/K (better/worse iff >= K/alpha, as the own sequence's) and its fit; None when row
    k is not a member."""
    fits = pooled_fits(d, mask, k, hist, hmask)
    if fits is None:
        return None
    fit, others = fits
    with np.errstate(divide="ignore", invalid="ignore"):
        own_var = own.diff_var()[:, k]
        ratio = np.where(own_var == 0, 0.0, own_var / others.diff_var())
    p = special.fdtrc(np.maximum(own.nu[:, k], 1), np.maximum(others.nu, 1), np.maximum(ratio, 0))
    use = (own.nu[:, k] >= 1) & (others.nu >= 1) & (p >= GATE_P) & history_ok
    plo, phi, pe = interval(fit, a_pool, g)
    return use, plo, phi, share * pe, fit


def verdict_codes(lo, hi, n_pairs, diverged, margin: float) -> np.ndarray:
    """Indices into CODES from an interval, the pairs and the diverged seeds (arrays)."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    n_pairs, diverged = np.broadcast_to(n_pairs, lo.shape), np.broadcast_to(diverged, lo.shape)
    better, worse = hi < 0, lo > 0
    equivalent = (lo >= -margin) & (hi <= margin)
    code = np.select(
        [equivalent, better, worse],
        [CODES.index(Verdict.EQUIVALENT), CODES.index(Verdict.BETTER), CODES.index(Verdict.WORSE)],
        CODES.index(Verdict.INCONCLUSIVE),
    )
    code = np.where(n_pairs == 1, CODES.index(Verdict.SINGLE_SEED), code)
    code = np.where(n_pairs == 0, CODES.index(Verdict.NO_RESULT), code)
    unstable = np.where(worse, CODES.index(Verdict.WORSE), CODES.index(Verdict.UNSTABLE))
    return np.where(diverged > 0, unstable, code)


def _value(x) -> float:
    """A loss as a float; None (no loss recorded) counts as non-finite."""
    return math.nan if x is None else float(x)


def decide_table(
    base: Mapping[int, float],
    variants: Sequence[Mapping[int, float]],
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    history: Sequence[Mapping[int, float]] = (),
) -> list[RowDecision]:
    """Verdicts for a table's variant rows against the baseline, valid at every look.

    base and each variant map seed -> best val loss (NaN, inf or None: diverged/failed);
    history holds earlier paired differences against this baseline, seed -> difference.
    Call it at every look with everything recorded so far; rows are paired seed by seed.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    b = {s: _value(x) for s, x in base.items()}
    axis = sorted(s for s, x in b.items() if math.isfinite(x))
    pos = {s: i for i, s in enumerate(axis)}
    K, S = len(variants), max(len(axis), 1)
    d, mask = np.zeros((1, K, S)), np.zeros((K, S), dtype=bool)
    diverged, totals = [], []
    for k, variant in enumerate(variants):
        v = {s: _value(x) for s, x in variant.items()}
        diverged.append(sum(not math.isfinite(x) for x in v.values()))
        totals.append(len(v))
        for s, x in v.items():
            if s in pos and math.isfinite(x):
                d[0, k, pos[s]], mask[k, pos[s]] = x - b[s], True
    hist, hmask = np.zeros((1, len(history), S)), np.zeros((len(history), S), dtype=bool)
    for h, diffs in enumerate(history):
        for s, x in diffs.items():
            if s in pos and math.isfinite(_value(x)):
                hist[0, h, pos[s]], hmask[h, pos[s]] = float(x), True
    if K == 0:
        return []
    paths = table_paths(d, mask, hist, hmask, alpha)
    counts = {"base_div": len(b) - len(axis), "n_base": len(b), "alpha": alpha / K, "rows": K,
              "cache": {}}  # fmt: skip
    return [
        _row(paths, k, d[0, k, mask[k]], tuple(np.asarray(axis)[mask[k, : len(axis)]]),
             diverged[k], totals[k], margin, **counts)
        for k in range(K)
    ]  # fmt: skip


def _row(paths: Paths, k, diffs, seeds, diverged, n_total, margin, base_div, n_base, alpha, rows,
         cache):  # fmt: skip
    """One row's decision at the last prefix of the table's seed axis."""
    at = (0, k, -1)
    lo, hi, n = float(paths.lo[at]), float(paths.hi[at]), len(diffs)
    verdict = CODES[int(verdict_codes(lo, hi, n, diverged, margin))]
    delta = math.fsum(diffs) / n if n else math.nan
    needed = None
    if verdict == Verdict.INCONCLUSIVE:  # the sooner of the two sequences the row has
        fits = [(paths.own_sd[at], paths.own_nu[at], paths.own_level)]
        if paths.pooled[at]:
            fits.append((paths.sd[at], paths.nu[at], paths.level[at]))
        ns = [power.seeds_needed(delta, float(sd), n, float(nu), float(lv), margin, PRIOR_G,
                                 cache=cache) for sd, nu, lv in fits]  # fmt: skip
        needed = min((x for x in ns if x is not None), default=None)
    if n < 2:
        lo = hi = math.nan
    return RowDecision(
        verdict=verdict,
        delta=delta,
        ci_low=lo,
        ci_high=hi,
        level=alpha,
        e_value=float(paths.evidence[at]),
        n_pairs=n,
        seeds=tuple(int(s) for s in seeds),
        diverged=diverged,
        n_total=n_total,
        pooled=bool(paths.pooled[at]),
        seeds_needed=needed,
        label=row_label(verdict, diverged, n_total, base_div, n_base),
        base_diverged=base_div,
        rows=rows,
    )
