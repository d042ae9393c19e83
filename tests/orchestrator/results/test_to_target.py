"""orchestrator.results.to_target: interpolation, target and ratio on constructed curves,
and the seed-bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.results.to_target import compute_to_target, first_crossing, format_ratio

STEPS = list(range(0, 101, 10))


def _line(start, slope, offset=0.0):
    return [(s, start - slope * s + offset) for s in STEPS]


def test_interpolates_between_the_evals_that_straddle_the_target():
    base = {1: _line(3.0, 0.01), 2: _line(3.0, 0.01)}  # reaches its best 2.0 at step 100
    fast = {1: _line(3.0, 0.012), 2: _line(3.0, 0.012)}  # 2.04 at step 80, 1.92 at 90
    r = compute_to_target(base, fast, 1e9, 1e9)
    assert (r.target, r.base_step) == pytest.approx((2.0, 100.0))
    assert r.variant_step == pytest.approx(80 + (2.04 - 2.0) / (2.04 - 1.92) * 10)  # 83.33
    assert r.ratio == pytest.approx(83.3333333 / 100)
    # a variant twice as costly per step needs 1.67x the baseline's FLOPs
    assert compute_to_target(base, fast, 1e9, 2e9).ratio == pytest.approx(1.6666667)
    # identical seeds: every resample gives the same ratio, so the interval is that point
    assert (r.low, r.high) == pytest.approx((r.ratio, r.ratio)) and r.label() == "0.83x"


def test_a_variant_that_never_reaches_the_target():
    base = {1: _line(3.0, 0.01)}
    slow = {1: _line(3.0, 0.005)}  # bottoms out at 2.5
    r = compute_to_target(base, slow, 1.0, 1.0)
    assert math.isinf(r.ratio) and math.isinf(r.variant_step) and r.label() == "never"


def test_target_is_the_best_of_the_baselines_mean_curve():
    # seed 1 is best at step 50 (1.9), seed 2 at step 100 (2.0): the mean of bests is 1.95,
    # below every point of the mean curve; the mean curve's best is min over steps
    s1 = [(s, 1.9 + abs(s - 50) * 0.004) for s in STEPS]
    s2 = _line(3.0, 0.01)
    mean = [(a[1] + b[1]) / 2 for a, b in zip(s1, s2, strict=True)]
    r = compute_to_target({1: s1, 2: s2}, {1: s1, 2: s2}, 1.0, 1.0)
    assert r.target == pytest.approx(min(mean)) and r.target > (1.9 + 2.0) / 2
    assert r.base_step == STEPS[int(np.argmin(mean))] and r.ratio == pytest.approx(1.0)


def test_bootstrap_interval_on_paired_seeds():
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 0.03, 6)  # what each seed does to both runs
    base = {k: _line(3.0, 0.01, o) for k, o in enumerate(offsets, start=1)}
    fast = {k: _line(3.0, 0.0115, o + rng.normal(0, 0.01)) for k, o in enumerate(offsets, 1)}
    r = compute_to_target(base, fast, 1.0, 1.0)
    assert r.low <= r.ratio <= r.high < 1.0  # clearly cheaper: the interval excludes 1
    assert r.label() == f"{r.ratio:.2f}x"
    again = compute_to_target(base, fast, 1.0, 1.0)  # fixed rng seed: reproducible
    assert (again.low, again.high) == (r.low, r.high)
    # unpaired resampling (different seeds) is wider: the seed offsets no longer cancel
    unpaired = compute_to_target(list(base.values()), list(fast.values()), 1.0, 1.0)
    assert unpaired.high - unpaired.low > r.high - r.low
    # an equivalent variant: better on half the seeds, worse on the others, the same on
    # average: ratio 1, and resampling the seeds moves it both ways
    same = {k: _line(3.0, 0.01, o + 0.02 * (-1) ** k) for k, o in enumerate(offsets, 1)}
    eq = compute_to_target(base, same, 1.0, 1.0)
    assert eq.ratio == pytest.approx(1.0) and eq.low < 1.0 < eq.high
    assert eq.label() == "≈1.00x"


def test_first_crossing_and_format():
    steps = np.array([0.0, 10.0, 20.0])
    values = np.array([[3.0, 2.5, 2.0], [1.0, 0.9, 0.8], [3.0, 3.0, 3.0]])
    got = first_crossing(steps, values, np.array([2.25, 2.0, 2.0]))
    assert got.tolist() == [15.0, 0.0, math.inf]
    assert format_ratio(1.3, 0.9, 1.8) == "≈1.00x"
    assert format_ratio(0.674, 0.61, 0.74) == "0.67x"
    assert format_ratio(math.inf, math.inf, math.inf) == "never"
    assert format_ratio(math.nan, math.nan, math.nan) == ""
    assert math.isnan(compute_to_target({}, {}, 1.0, 1.0).ratio)
