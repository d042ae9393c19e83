"""orchestrator.results.power: the interval's critical value against the Bayes factor it
inverts, and seeds_needed against simulation through the real decision code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.results import anytime as A
from orchestrator.results.anytime import CODES, table_paths, verdict_codes
from orchestrator.results.pooling import own_fit
from orchestrator.results.power import POWER, crit, decision_power, seeds_needed
from orchestrator.results.verdicts import FINAL, Verdict


def _log_bf(b, v, rss, nu, gp):
    h = 1 + gp / v
    return -0.5 * math.log(h) + (nu + 1) / 2 * math.log((b * b / v + rss) / (b * b / (v * h) + rss))


@pytest.mark.parametrize(
    "v,rss,nu,gp,level",
    [(0.2, 0.001, 4, 2.0, 0.05), (0.1, 0.03, 12, 4.0, 0.002), (0.5, 1.0, 3, 1.0, 0.2)],
)
def test_crit_is_where_the_bayes_factor_reaches_one_over_level(v, rss, nu, gp, level):
    b = float(crit(1 + gp / v, nu, level)) * math.sqrt(v * rss / nu)
    assert _log_bf(b, v, rss, nu, gp) == pytest.approx(-math.log(level), rel=1e-9)


def test_crit_is_infinite_without_enough_data():
    assert np.isinf(crit(1 + 2 * 3, 2, 0.05))  # three pairs at 5%, g = 2: c >= h
    assert np.isinf(crit(5.0, 0, 0.05))  # no residual df
    assert crit(1 + 2 * 5, 4, 0.05) == pytest.approx(5.825233857, rel=1e-9)  # test_anytime


def _own_decisions(delta, sd, n, reps, level, margin, rng):
    """Verdicts of one look at exactly n seeds (no earlier looks), own sequence at level."""
    d = rng.normal(delta, sd, (reps, 1, n))
    lo, hi, _ = A.interval(own_fit(d, np.ones((1, n), dtype=bool)), level, A.PRIOR_G)
    codes = verdict_codes(lo[..., -1], hi[..., -1], n, 0, margin)
    return np.isin(codes, [CODES.index(v) for v in FINAL]).mean()


@pytest.mark.parametrize("delta,sd", [(0.03, 0.03), (0.005, 0.01)])
def test_decision_power_matches_simulation(delta, sd):
    reps, n, level, margin = 20_000, 9, 0.05, 0.02
    predicted = decision_power(delta, sd, n, n - 1, level, margin, A.PRIOR_G)[0]
    got = _own_decisions(delta, sd, n, reps, level, margin, np.random.default_rng(5))
    assert got == pytest.approx(predicted, abs=3 * math.sqrt(predicted * (1 - predicted) / reps))


def test_seeds_needed_delivers_its_power():
    """With the truth as input, a look at seeds_needed seeds settles the row in >= 80% of
    simulated tables (and one seed fewer would not have); the real decision code, which
    also keeps what earlier looks showed, does at least as well."""
    delta, sd, level, margin, reps = -0.04, 0.03, 0.05, 0.02, 20_000
    n = seeds_needed(delta, sd, 3, 2, level, margin, A.PRIOR_G)
    assert n is not None and n > 3
    at_n = decision_power(delta, sd, [n - 1, n], [n - 2, n - 1], level, margin, A.PRIOR_G)
    assert at_n[0] < POWER <= at_n[1]
    rng = np.random.default_rng(6)
    se = math.sqrt(POWER * (1 - POWER) / reps)
    got = _own_decisions(delta, sd, n, reps, level, margin, rng)
    assert got == pytest.approx(at_n[1], abs=3 * se) and got >= POWER - 3 * se
    paths = table_paths(rng.normal(delta, sd, (reps, 1, n)), np.ones((1, n), dtype=bool))
    codes = verdict_codes(paths.lo[..., -1], paths.hi[..., -1], n, 0, margin)
    assert np.mean(codes == CODES.index(Verdict.BETTER)) >= POWER - 3 * se


def test_seeds_needed_edge_cases():
    assert seeds_needed(0.0, 0.0, 3, 2, 0.05, 0.02, 2.0) is None  # no spread: nothing to say
    assert seeds_needed(0.001, 1.0, 3, 2, 0.05, 0.02, 2.0) is None  # beyond MAX_SEEDS
    tight = seeds_needed(0.0, 0.005, 3, 2, 0.05, 0.02, 2.0)  # equivalence is near
    loose = seeds_needed(0.0, 0.02, 3, 2, 0.05, 0.02, 2.0)
    assert tight is not None and loose is not None and tight < loose


@pytest.mark.parametrize(
    "delta,sd,n_now,level",
    [(-0.04, 0.03, 3, 0.05), (0.01, 0.03, 4, 0.01), (0.0, 0.01, 3, 0.0025), (0.05, 0.08, 5, 0.05)],
)
def test_seeds_needed_is_the_first_n_a_scan_finds(delta, sd, n_now, level):
    """The gallop and bisection find the same n as trying every n in turn."""
    n = np.arange(n_now + 1, 201)
    p = decision_power(delta, sd, n, n - 1, level, 0.02, A.PRIOR_G)
    first = int(n[np.flatnonzero(p >= POWER)[0]]) if (p >= POWER).any() else None
    assert seeds_needed(delta, sd, n_now, n_now - 1, level, 0.02, A.PRIOR_G) == first


def test_the_chi_square_ratios_are_exact_then_close():
    """sqrt(chi2/nu) at the quantile midpoints: scipy's up to EXACT_NU, Wilson–Hilferty above,
    within 0.5% of scipy's there at every quantile (0.3% at the most extreme, nu = 31)."""
    from scipy import special

    from orchestrator.results.power import _QUANTILES, EXACT_NU, sd_ratios

    u = (np.arange(_QUANTILES) + 0.5) / _QUANTILES
    for nu in (2.0, float(EXACT_NU), 31.0, 80.0, 400.0):
        exact = np.sqrt(special.chdtri(nu, 1.0 - u) / nu)
        got = sd_ratios(np.array([nu]))[0]
        if nu <= EXACT_NU:
            assert np.array_equal(got, exact)
        else:
            assert np.max(np.abs(got / exact - 1.0)) < 5e-3
            assert np.mean(got**2) == pytest.approx(1.0, abs=2e-3)
