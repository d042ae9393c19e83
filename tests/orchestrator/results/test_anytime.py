"""orchestrator.results.anytime: the Bayes factor and its interval against hand computations
and numerical integration, the table's rules (multiplicity, pooling check, diverged seeds,
single seeds), and validity by simulation through the real decision code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from orchestrator.results import anytime as A
from orchestrator.results.anytime import CODES, decide_table, table_paths, verdict_codes
from orchestrator.results.pooling import own_fit
from orchestrator.results.verdicts import Verdict

D5 = [-0.05, -0.02, -0.06, -0.04, -0.03]


def _own(d):
    x = np.asarray(d, dtype=float)[None, None, :]
    return own_fit(x, np.ones((1, x.shape[2]), dtype=bool))


def test_interval_by_hand():
    lo, hi, e = A.interval(_own(D5), 0.05, 2.0)
    # mean -0.04; deviations -0.01, 0.02, -0.02, 0, 0.01: SS = 0.001, nu = 4, v = 1/5
    # h = 1 + g/v = 11; c = (sqrt(11)/0.05)^(2/5) = 5.354150; crit = sqrt(4(c-1)/(1-c/h))
    c = (math.sqrt(11) / 0.05) ** 0.4
    crit = math.sqrt(4 * (c - 1) / (1 - c / 11))
    assert (c, crit) == pytest.approx((5.354150015, 5.825233857), rel=1e-9)
    half = crit * math.sqrt(0.2 * 0.001 / 4)  # crit * sqrt(v * SS / nu) = 0.0411906
    assert (lo[0, 0, -1], hi[0, 0, -1]) == pytest.approx((-0.04 - half, -0.04 + half), rel=1e-9)
    assert (lo[0, 0, -1], hi[0, 0, -1]) == pytest.approx((-0.0811906, 0.0011906), abs=1e-7)
    # BF(0) = h^(-1/2) ((n b² + SS)/(n b²/h + SS))^((nu+1)/2) = 11^-0.5 (0.009/0.0017273)^2.5
    assert e[0, 0, -1] == pytest.approx(11**-0.5 * (0.009 / (0.008 / 11 + 0.001)) ** 2.5)
    assert e[0, 0, -1] == pytest.approx(18.6856255, rel=1e-7)  # < 1/0.05: 0 stays inside
    # the fixed-n t interval at 95% is narrower: t(0.975, 4) = 2.776 < crit = 5.825
    assert stats.t.ppf(0.975, 4) < crit
    # fewer than three pairs: with g = 2 no finite interval at 5% (c >= h)
    lo3, hi3, _ = A.interval(_own(D5[:3]), 0.05, 2.0)
    assert np.isinf(lo3[0, 0, :]).all() and np.isinf(hi3[0, 0, :]).all()


def test_interval_endpoints_are_where_the_bayes_factor_reaches_one_over_level():
    fit = _own(D5)
    lo, hi, _ = A.interval(fit, 0.01, 2.0)
    for mu0 in (lo[0, 0, -1], hi[0, 0, -1]):
        shifted = _own([x - mu0 for x in D5])
        assert A.interval(shifted, 0.01, 2.0)[2][0, 0, -1] == pytest.approx(100.0, rel=1e-8)


def test_bayes_factor_matches_numerical_integration():
    """BF = ∫∫ N(x; e·sd, sd) N(e; 0, g) de d(sd)/sd / ∫ N(x; 0, sd) d(sd)/sd, by Simpson's
    rule on a grid (log sd from 1e-5 to 5, the standardised effect e from -15 to 15)."""
    x, g = np.array(D5[:4]), 2.0
    t = np.linspace(math.log(1e-5), math.log(5.0), 1201)  # log sd: d(sd)/sd = dt
    e = np.linspace(-15, 15, 1201)
    sd = np.exp(t)[:, None]

    def loglik(mu):  # normal log-likelihood of x, [t, e] or [t, 1]
        z = (x[None, None, :] - mu[..., None]) / sd[..., None]
        return (-0.5 * z * z).sum(axis=-1) - x.size * np.log(sd * math.sqrt(2 * math.pi))

    alt = np.exp(loglik(e[None, :] * sd)) * stats.norm.pdf(e, 0, math.sqrt(g))[None, :]
    num = integrate.simpson(integrate.simpson(alt, x=e, axis=1), x=t)
    den = integrate.simpson(np.exp(loglik(np.zeros((t.size, 1))))[:, 0], x=t)
    assert A.interval(_own(x), 0.05, g)[2][0, 0, -1] == pytest.approx(num / den, rel=1e-6)


def test_bayes_factor_has_mean_one_under_the_null_at_every_n():
    """A test martingale: E[BF_n] = 1 for every n (200k simulated null sequences)."""
    x = np.random.default_rng(0).normal(0.0, 1.0, (200_000, 1, 6))
    e = A.interval(own_fit(x, np.ones((1, 6), dtype=bool)), 0.05, A.PRIOR_G)[2][:, 0, 1:]
    se = e.std(axis=0) / math.sqrt(x.shape[0])
    assert np.all(np.abs(e.mean(axis=0) - 1.0) < 4 * se + 1e-3)


BASE = {1: 2.50, 2: 2.60, 3: 2.55, 4: 2.52, 5: 2.58}


def _variant(diffs, base=BASE):
    return {s: base[s] + x for s, x in zip(sorted(base), diffs, strict=False)}


def test_one_row_is_the_own_sequence_at_alpha():
    (row,) = decide_table(BASE, [_variant(D5)])
    lo, hi, _ = A.interval(_own(D5), 0.05, A.PRIOR_G)
    assert (row.ci_low, row.ci_high) == pytest.approx((lo[0, 0, -1], hi[0, 0, -1]), rel=1e-9)
    assert row.e_value == pytest.approx(18.6856255, rel=1e-6)
    assert (row.verdict, row.level, row.pooled, row.n_pairs) == ("inconclusive", 0.05, False, 5)
    assert row.delta == pytest.approx(-0.04) and row.seeds == (1, 2, 3, 4, 5)
    assert row.seeds_needed is not None and row.seeds_needed > 5
    (big,) = decide_table(BASE, [_variant([-0.1, -0.07, -0.11, -0.09, -0.08])])
    assert big.verdict == Verdict.BETTER and big.label == "better" and big.ci_high < 0


def test_multiplicity_gives_each_row_alpha_over_k_and_evidence_matches_the_interval():
    rng = np.random.default_rng(4)
    for _ in range(40):
        base = {s: 2.5 + rng.normal(0, 0.02) for s in range(1, 7)}
        variants = [
            {s: b + rng.normal(mu, 0.02) for s, b in base.items()} for mu in (-0.06, 0.0, 0.04)
        ]
        rows = decide_table(base, variants)
        for row in rows:
            assert row.level == pytest.approx(0.05 / 3)
            excludes = row.ci_high < 0 or row.ci_low > 0
            assert excludes == (row.e_value >= 3 / 0.05)


def test_pooling_check_on_constructed_data():
    rng = np.random.default_rng(7)
    base = {s: 2.5 + rng.normal(0, 0.02) for s in range(1, 9)}
    z = rng.normal(0, 0.02, (5, 8))
    quiet = [{s: base[s] + z[k, i] for i, s in enumerate(base)} for k in range(4)]
    loud = {s: base[s] + 20 * z[4, i] for i, s in enumerate(base)}  # 20x the noise
    rows = decide_table(base, [*quiet, loud])
    assert [r.pooled for r in rows] == [True, True, True, True, False]
    # a history far quieter than the table: the check refuses the history's pool for every
    # row (its values then change nothing), the table's own pool stays
    history = [{s: 0.001 * rng.normal() for s in base} for _ in range(4)]
    other = [{s: 0.001 * rng.normal() for s in base} for _ in range(4)]
    refused = decide_table(base, quiet, history=history)
    assert all(r.pooled for r in refused)
    again = decide_table(base, quiet, history=other)
    assert [(r.ci_low, r.ci_high) for r in refused] == [(r.ci_low, r.ci_high) for r in again]
    # one row alone with that history: nothing left to pool with
    assert not decide_table(base, quiet[:1], history=history)[0].pooled
    # a history like the table: pooled, and more information than without it
    alike = [{s: rng.normal(0, 0.02 * math.sqrt(2)) for s in base} for _ in range(4)]
    with_h = decide_table(base, quiet[:1], history=alike)
    assert with_h[0].pooled and not decide_table(base, quiet[:1])[0].pooled


def test_a_diverged_seed_is_counted_and_marked():
    base = {s: 2.5 for s in range(1, 5)}
    v = {1: 2.40, 2: math.nan, 3: 2.41, 4: 2.39}  # much better on the finite seeds
    (row,) = decide_table(base, [v])
    assert (row.verdict, row.label) == (Verdict.UNSTABLE, "unstable (1/4 diverged)")
    assert (row.diverged, row.n_total, row.n_pairs, row.seeds) == (1, 4, 3, (1, 3, 4))
    worse = {s: 2.5 + 0.3 + 0.001 * s for s in range(1, 9)}
    worse[5] = math.inf
    (w,) = decide_table({s: 2.5 for s in range(1, 9)}, [worse])
    assert (w.verdict, w.label) == (Verdict.WORSE, "worse (1/8 diverged)")
    failed = {1: None, 2: math.nan}  # every seed failed: unstable, no pairs
    (f,) = decide_table(base, [failed])
    assert (f.verdict, f.n_pairs, f.label) == (Verdict.UNSTABLE, 0, "unstable (2/2 diverged)")


def test_a_diverged_baseline_seed_leaves_every_row_and_is_named():
    base = {1: 2.50, 2: math.nan, 3: 2.55, 4: 2.52, 5: 2.58, 6: 2.51}
    v = {s: (2.5 if s == 2 else base[s] - 0.2 + 0.001 * s) for s in base}
    (row,) = decide_table(base, [v])
    assert row.seeds == (1, 3, 4, 5, 6) and row.base_diverged == 1
    assert row.label == "better (baseline 1/6 diverged)"


def test_single_seed_delta_is_against_the_baseline_on_that_seed():
    (row,) = decide_table({1: 2.50, 2: 2.80, 3: 2.60}, [{2: 2.75}])
    assert row.delta == pytest.approx(-0.05)  # 2.75 - 2.80, not 2.75 - mean(baseline)
    assert (row.verdict, row.seeds, row.label) == (Verdict.SINGLE_SEED, (2,), "single seed")
    assert math.isnan(row.ci_low) and row.seeds_needed is None
    (none,) = decide_table({1: 2.5}, [{7: 2.4}])
    assert none.verdict == Verdict.NO_RESULT and math.isnan(none.delta)


def test_zero_spread_and_bad_input():
    base = {s: 2.5 + 0.01 * s for s in range(1, 6)}
    same, shifted = decide_table(base, [dict(base), {s: x + 0.25 for s, x in base.items()}])
    assert (same.verdict, same.ci_low, same.ci_high) == (Verdict.EQUIVALENT, 0.0, 0.0)
    assert shifted.verdict == Verdict.WORSE
    with pytest.raises(ValueError, match="alpha"):
        decide_table(base, [base], alpha=1.5)
    with pytest.raises(ValueError, match="margin"):
        decide_table(base, [base], margin=-0.1)
    assert decide_table(base, []) == []


def test_decided_rows_do_not_flip_back():
    base = {s: 2.5 for s in range(1, 13)}
    v = {s: 2.5 - 0.1 - 0.002 * (s % 3) for s in range(1, 7)}
    first = decide_table({s: base[s] for s in v}, [v])[0]
    assert first.verdict == Verdict.BETTER
    # later seeds that alone would put 0 back inside: the running intersection keeps it
    later = {**v, **{s: 2.5 + 0.08 * (-1) ** s for s in range(7, 13)}}
    again = decide_table(base, [later])[0]
    assert again.verdict == Verdict.BETTER and again.ci_high <= first.ci_high


def _null_paths(rng, reps, k, seeds, sd=0.03, history=0):
    e0 = rng.normal(0, sd / math.sqrt(2), (reps, 1, seeds))
    e = rng.normal(0, sd / math.sqrt(2), (reps, k + history, seeds))
    d = e - e0
    hmask = np.zeros((history, seeds), dtype=bool)
    hmask[:, :3] = True
    hist = d[:, k:] if history else None
    return table_paths(d[:, :k], np.ones((k, seeds), dtype=bool), hist, hmask if history else None)


@pytest.mark.parametrize("k,history", [(1, 0), (3, 0), (3, 2)])
def test_no_false_claims_at_any_look_by_simulation(k, history):
    """A table after every seed up to 12, all rows null: any better/worse at any look."""
    reps = 3000
    paths = _null_paths(np.random.default_rng(10 + k + history), reps, k, 12, history=history)
    codes = verdict_codes(paths.lo, paths.hi, paths.n_pairs, 0, 0.02)
    false = np.isin(codes, [CODES.index(Verdict.BETTER), CODES.index(Verdict.WORSE)])
    rate = false.any(axis=(1, 2)).mean()
    print(f"{k} rows, {history} history: family-wise false claims {rate:.4f}")
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)


def test_a_null_variant_diverging_on_a_third_of_its_seeds_never_reads_better():
    rng = np.random.default_rng(3)
    reps, seeds = 3000, 12
    d = rng.normal(0, 0.03, (reps, 1, seeds))
    mask = np.ones((1, seeds), dtype=bool)
    mask[0, 1::3] = False  # seeds 2, 5, 8, 11 diverge
    paths = table_paths(d, mask)
    diverged = np.cumsum(~mask, axis=-1)
    codes = verdict_codes(paths.lo, paths.hi, paths.n_pairs, diverged, 0.02)
    after = codes[:, :, 1:]  # from the first diverged seed on
    for v in (Verdict.BETTER, Verdict.EQUIVALENT, Verdict.INCONCLUSIVE):
        assert not np.any(after == CODES.index(v))
    assert np.mean(after == CODES.index(Verdict.UNSTABLE)) > 0.95
