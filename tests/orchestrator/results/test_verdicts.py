"""orchestrator.results.verdicts: the numbers against hand computations, and the stopping rule by
simulation through the real decision code."""

from __future__ import annotations

import itertools
import math
import statistics
import warnings

import numpy as np
import pytest
from scipy import stats

from orchestrator.results.verdicts import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN,
    MAX_SEEDS,
    Verdict,
    compare,
    decide,
    decide_look,
    holm,
    sequential_level,
)

BASE = {1: 2.50, 2: 2.60, 3: 2.55}
VARIANT = {1: 2.45, 2: 2.58, 3: 2.49}


def test_paired_interval_and_p_by_hand():
    c = compare(BASE, VARIANT)
    # differences -0.05, -0.02, -0.06
    mean = (-0.05 - 0.02 - 0.06) / 3  # -0.043333...
    sd = math.sqrt(((-0.05 - mean) ** 2 + (-0.02 - mean) ** 2 + (-0.06 - mean) ** 2) / 2)
    se = sd / math.sqrt(3)
    t975 = 4.302652729911275  # t quantile 0.975, df 2
    assert (c.pairing, c.n_pairs, c.df) == ("paired", 3, 2.0)
    assert c.delta == pytest.approx(-0.0433333333, abs=1e-9)
    assert c.sd == pytest.approx(0.0208166600, abs=1e-9)
    assert c.se == pytest.approx(se, rel=1e-9)
    assert c.ci_low == pytest.approx(mean - t975 * se, rel=1e-8)  # -0.0950448
    assert c.ci_high == pytest.approx(mean + t975 * se, rel=1e-8)  # +0.0083781
    assert (c.ci_low, c.ci_high) == pytest.approx((-0.0950448, 0.0083781), abs=1e-7)
    # t = mean / se; here t² = 13 exactly. The t(2) CDF is 1/2 + t / (2 sqrt(2 + t²)), so
    # p = 2 (1 - F(|t|)) = 1 - |t| / sqrt(2 + t²) = 1 - sqrt(13/15).
    t = mean / se
    assert t**2 == pytest.approx(13.0)
    assert c.p_value == pytest.approx(1 - abs(t) / math.sqrt(2 + t**2), rel=1e-9)
    assert c.p_value == pytest.approx(1 - math.sqrt(13 / 15), rel=1e-6)  # 0.0690507
    scipy_p = stats.ttest_rel(list(VARIANT.values()), list(BASE.values())).pvalue
    assert c.p_value == pytest.approx(scipy_p, rel=1e-9)


def test_paired_uses_shared_seeds_only():
    base = {**BASE, 7: 9.0}  # seed 7 has no partner: ignored by the paired test
    c = compare(base, {**VARIANT, 8: 0.0})
    ref = compare(BASE, VARIANT)
    assert (c.n_base, c.n_variant, c.n_pairs, c.pairing) == (4, 4, 3, "paired")
    assert (c.delta, c.ci_low, c.ci_high, c.p_value) == (
        ref.delta,
        ref.ci_low,
        ref.ci_high,
        ref.p_value,
    )


def test_welch_when_seeds_do_not_match_by_hand():
    base = {1: 2.50, 2: 2.60, 3: 2.55}
    variant = {4: 2.45, 5: 2.58, 6: 2.49, 7: 2.52}
    c = compare(base, variant)
    xb, xv = list(base.values()), list(variant.values())
    wb, wv = statistics.variance(xb) / 3, statistics.variance(xv) / 4  # s²/n per side
    se = math.sqrt(wb + wv)
    df = (wb + wv) ** 2 / (wb**2 / 2 + wv**2 / 3)  # Welch–Satterthwaite
    assert df == pytest.approx(4.68831, abs=1e-5)  # s² = 0.0025 and 0.0030
    delta = statistics.fmean(xv) - statistics.fmean(xb)  # 2.51 - 2.55 = -0.04
    q = stats.t.ppf(0.975, df)
    assert (c.pairing, c.n_pairs) == ("unpaired", 0)
    assert c.delta == pytest.approx(-0.04, abs=1e-12)
    assert (c.se, c.df) == pytest.approx((se, df), rel=1e-9)
    assert (c.ci_low, c.ci_high) == pytest.approx((delta - q * se, delta + q * se), rel=1e-8)
    assert c.p_value == pytest.approx(2 * stats.t.sf(abs(delta / se), df), rel=1e-8)
    assert c.p_value == pytest.approx(stats.ttest_ind(xv, xb, equal_var=False).pvalue, rel=1e-8)
    # one shared seed is not a pairing: still Welch
    assert compare(base, {1: 2.45, 5: 2.58, 6: 2.49}).pairing == "unpaired"


def test_single_seed():
    c = compare({1: 2.5}, {1: 2.4, 2: 2.3})
    assert (c.pairing, c.n_pairs) == ("", 1)
    assert c.delta == pytest.approx(-0.1)
    assert all(math.isnan(x) for x in (c.ci_low, c.ci_high, c.p_value))
    assert compare({1: 2.5}, {2: 2.3}).delta == pytest.approx(-0.2)  # no shared seed: means
    row = decide([c])[0]
    assert (row.verdict, row.seeds_needed) == (Verdict.SINGLE_SEED, None)


def test_diverged_seed_is_refused():
    with pytest.raises(ValueError, match="variant seed 2: best val loss nan"):
        compare(BASE, {1: 2.4, 2: math.nan})


def test_zero_spread_is_exact_and_silent():
    base = {1: 0.1, 2: 0.1, 3: 0.1}  # mean of three 0.1 is not 0.1 in floating point
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = compare(BASE, dict(BASE))
        shift = compare({1: 2.5, 2: 2.75, 3: 3.0}, {1: 2.75, 2: 3.0, 3: 3.25})
        flat = compare(base, dict(base))
        welch = compare({1: 2.5, 2: 2.5}, {3: 2.5, 4: 2.5})
        rows = decide([same, shift, flat, welch])
    assert same.delta == 0.0 and (same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 1.0)
    assert (shift.delta, shift.ci_low, shift.ci_high, shift.p_value) == (0.25, 0.25, 0.25, 0.0)
    assert (flat.delta, flat.sd) == (0.0, 0.0) and welch.delta == 0.0
    assert [r.verdict for r in rows] == ["equivalent", "worse", "equivalent", "equivalent"]


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, math.nan, 0.04])  # NaN passes through and m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    p = list(np.random.default_rng(0).uniform(0, 0.2, 50))
    adj = holm(p)
    pairs = sorted(zip(p, adj, strict=True))
    assert all(a <= b for (_, a), (_, b) in itertools.pairwise(pairs))  # monotone
    assert all(x <= y <= 1 for x, y in zip(p, adj, strict=True))
    with pytest.raises(ValueError, match="1.5"):
        holm([1.5])


def _paired(deltas, sd=0.0, start=2.5):
    """Baseline and variant dicts whose differences have exactly this mean and SD."""
    z = np.linspace(-1, 1, len(deltas)) if len(deltas) > 1 else np.zeros(1)
    z = (z - z.mean()) / (z.std(ddof=1) if len(deltas) > 1 else 1)
    base = {s + 1: start + 0.03 * ((s * 7) % 5) for s in range(len(deltas))}
    return base, {s: base[s] + d + sd * z[s - 1] for s, d in zip(base, deltas, strict=True)}


def _verdict_of(delta, sd, n):
    return decide([compare(*_paired([delta] * n, sd))])[0]


def test_decisions_on_constructed_inputs():
    assert _verdict_of(0.005, 1e-4, 5).verdict == Verdict.EQUIVALENT  # real but inside margin
    assert _verdict_of(0.3, 0.01, 3).verdict == Verdict.WORSE
    assert _verdict_of(-0.3, 0.01, 3).verdict == Verdict.BETTER
    assert _verdict_of(0.0, 0.002, 4).verdict == Verdict.EQUIVALENT
    row = _verdict_of(0.015, 0.03, 3)
    assert row.verdict == Verdict.INCONCLUSIVE
    assert (row.ci_low, row.ci_high) == (row.comparison.ci_low, row.comparison.ci_high)
    assert row.seeds_needed is not None and row.seeds_needed > 3
    # recompute with that many seeds at the same delta and SD: it settles
    settled = _verdict_of(0.015, 0.03, row.seeds_needed)
    assert settled.verdict in (Verdict.EQUIVALENT, Verdict.WORSE)
    # more noise needs more seeds; hopeless noise needs more than MAX_SEEDS
    needed = [_verdict_of(0.015, sd, 3).seeds_needed for sd in (0.01, 0.03, 0.06)]
    assert needed[0] < needed[1] < needed[2]
    assert _verdict_of(0.05, 2.0, 3).seeds_needed is None  # far more than MAX_SEEDS
    # a large, noisy delta: the seeds to see it as non-zero, checked the same way
    row = _verdict_of(0.06, 0.08, 3)
    assert row.verdict == Verdict.INCONCLUSIVE and row.seeds_needed <= MAX_SEEDS
    assert _verdict_of(0.06, 0.08, row.seeds_needed).verdict == Verdict.WORSE


def test_holm_applies_across_rows():
    # alone, each row is better at 5%; in a table of two, Holm needs one below 0.025
    a = compare(*_paired([-0.05] * 4, 0.03))
    b = compare(*_paired([-0.08] * 4, 0.03))
    assert 0.025 < a.p_value < 0.05 and b.p_value < 0.025
    assert decide([a])[0].verdict == Verdict.BETTER
    assert [r.verdict for r in decide([a, a])] == [Verdict.INCONCLUSIVE] * 2
    assert [r.verdict for r in decide([a, b])] == [Verdict.BETTER] * 2  # step-down
    assert decide([a, b])[0].p_adjusted == pytest.approx(a.p_value)


def test_sequential_level_spends_alpha():
    levels = [sequential_level(k, 9) for k in range(1, 10)]
    assert sum(levels) == pytest.approx(DEFAULT_ALPHA, abs=1e-15)
    assert levels[0] == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 9))  # 0.008736
    assert all(x > y for x, y in itertools.pairwise(levels))
    assert sequential_level(1, 1) == DEFAULT_ALPHA
    with pytest.raises(ValueError, match="look=0"):
        sequential_level(0, 9)
    with pytest.raises(ValueError, match="alpha"):
        decide([], alpha=1.5)


def test_decide_look_keeps_decided_rows_and_matches_fixed_n_at_one_look():
    base, v = _paired([0.0] * 3, 0.03)
    _, huge = _paired([-0.3] * 3, 0.01)
    one = decide_look(base, [v, huge], 1, 1)
    fixed = decide([compare(base, v), compare(base, huge)])
    assert one.rows == fixed and one.needs_seeds == [False, False]
    first = decide_look(base, [v, huge], 1, 5)
    assert [r.verdict for r in first.rows] == [Verdict.INCONCLUSIVE, Verdict.BETTER]
    assert first.needs_seeds == [True, False] and first.level == sequential_level(1, 5)
    later = decide_look({**base, 4: 2.5}, [{**v, 4: 2.5}, {**huge, 4: 9.9}], 2, 5, first.rows)
    assert later.rows[1] is first.rows[1]  # decided rows stay as they were


# Simulation: seed effect shared by both sides of a pair plus independent noise per run.
N0, MAX = 2, 10
N_LOOKS = MAX - N0 + 1


def _sequences(rng, n_seq, k, effect=0.0):
    shared = rng.normal(0, 0.03, (n_seq, 1, MAX))
    runs = 2.5 + shared + rng.normal(0, 0.02, (n_seq, k + 1, MAX))
    runs[:, 1:] += effect
    return runs  # [:, 0] baseline, [:, 1:] variants


def _until_clear(runs, naive):
    """Verdicts at the end of "add a seed until clear" for one sequence."""
    previous = None
    for look in range(1, N_LOOKS + 1):
        n = N0 + look - 1
        base, *variants = [{s + 1: float(x) for s, x in enumerate(r[:n])} for r in runs]
        if naive:  # fixed-n verdicts at alpha after every seed (used with one variant row)
            rows = decide([compare(base, v) for v in variants])
            needs = [r.verdict == Verdict.INCONCLUSIVE for r in rows]
        else:
            out = decide_look(base, variants, look, N_LOOKS, previous)
            rows, needs = out.rows, out.needs_seeds
        previous = rows
        if not any(needs):
            break
    return [r.verdict for r in previous]


def _false_rate(all_runs, naive):
    hits = [any(v in ("better", "worse") for v in _until_clear(r, naive)) for r in all_runs]
    return sum(hits) / len(hits)


def test_sequential_rule_keeps_false_positives_at_alpha():
    n = 2000
    runs = _sequences(np.random.default_rng(1), n, 1)
    limit = DEFAULT_ALPHA + 3 * math.sqrt(DEFAULT_ALPHA * (1 - DEFAULT_ALPHA) / n)  # 0.0646
    ours, naive = _false_rate(runs, naive=False), _false_rate(runs, naive=True)
    print(f"false better/worse over {n} null sequences: sequential {ours:.4f}, naive {naive:.4f}")
    assert ours <= limit
    assert naive > limit  # the simulation can fail: peeking at 5% inflates the rate


def test_sequential_rule_family_wise_with_three_rows():
    n = 1000
    runs = _sequences(np.random.default_rng(2), n, 3)
    limit = DEFAULT_ALPHA + 3 * math.sqrt(DEFAULT_ALPHA * (1 - DEFAULT_ALPHA) / n)  # 0.0707
    ours = _false_rate(runs, naive=False)
    print(f"family-wise false better/worse, 3 null rows, {n} sequences: {ours:.4f}")
    assert ours <= limit


def test_sequential_rule_finds_a_real_effect():
    sd_diff = 0.02 * math.sqrt(2)  # SD of a paired difference in _sequences
    runs = _sequences(np.random.default_rng(3), 300, 1, effect=-3 * sd_diff)
    verdicts = [_until_clear(r, naive=False)[0] for r in runs]
    print(f"3 SD improvement: {verdicts.count('better') / len(verdicts):.3f} better")
    assert verdicts.count(Verdict.BETTER) >= 0.9 * len(verdicts)
    assert Verdict.WORSE not in verdicts
    assert 3 * sd_diff > DEFAULT_MARGIN  # the effect is beyond the margin, not equivalent
