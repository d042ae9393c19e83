"""How wide the anytime interval of `anytime.py` is after n seeds, the chance that a look
then settles a row, and the seeds that give that chance 80% (`seeds_needed`).

The interval {mu0 : BF(mu0) < 1/level} of a fit with estimate b, variance v·s2, residual
sum of squares rss (nu degrees of freedom, s2 estimated by rss/nu) and effect prior variance
gp (all in the fit's units) is b ± crit·sqrt(v·rss/nu), where, with h = 1 + gp/v and
c = (sqrt(h)/level)^(2/(nu + 1)),

    crit = sqrt(nu·(c - 1) / (1 - c/h))        (infinite when c >= h or nu < 1),

from solving BF = h^(-1/2)·((b²/v + rss)/(b²/(v·h) + rss))^((nu+1)/2) = 1/level for b.
crit plays the part of the t quantile of a fixed-n interval, and is larger: the price of
holding at every look.

A look at n seeds settles a row when its interval lies inside ± margin (equivalent) or
excludes 0 (better/worse). With the true mean difference delta and SD sd of a paired
difference, the estimate is normal with standard error se = sd/sqrt(n) and the estimated SD
is sd·sqrt(chi2_nu/nu), independent of it; `decision_power` averages the normal
probabilities of those two events over the chi-square (400 quantile midpoints). The
interval then has h = 1 + g·n whether pooled or not (a row's own later seeds have v = 1/n
difference variances in both fits, see `pooling.py`), and nu grows by one per added seed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

POWER = 0.80  # the chance of settling a row that seeds_needed asks for
MAX_SEEDS = 200  # seeds_needed above this is None ("more than 200")
_QUANTILES = 400
EXACT_NU = 30  # exact chi-square quantiles up to this many degrees of freedom


def crit(h, nu, level):
    """The interval's half-width in units of sqrt(v·rss/nu) (arrays broadcast)."""
    h, nu = np.asarray(h, dtype=float), np.asarray(nu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c = np.exp(2.0 / (nu + 1.0) * (0.5 * np.log(h) - np.log(level)))
        den = 1.0 - c / h
        out = np.sqrt(nu * (c - 1.0) / den)
    return np.where((nu >= 1) & (den > 0), out, np.inf)


def sd_ratios(nu: np.ndarray, cache: dict | None = None) -> np.ndarray:
    """sd_hat/sd = sqrt(chi2_nu/nu) at the chi-square's quantile midpoints: [len(nu),
    _QUANTILES]. Exact (scipy's inverse chi-square) up to EXACT_NU degrees of freedom, held
    in `cache` (a dict the caller keeps for one table: its rows share these nu); above, the
    Wilson–Hilferty cube-root approximation, whose error there is far below the Monte
    Carlo error of any check of seeds_needed (the inverse chi-square was most of a table's
    time)."""
    u = (np.arange(_QUANTILES) + 0.5) / _QUANTILES
    cache = {} if cache is None else cache
    out = np.empty((len(nu), _QUANTILES))
    for i, v in enumerate(nu.tolist()):
        if v <= EXACT_NU:
            if v not in cache:
                cache[v] = np.sqrt(special.chdtri(v, 1.0 - u) / v)
            out[i] = cache[v]
        else:
            a = 2.0 / (9.0 * v)
            out[i] = np.sqrt(np.maximum(1.0 - a + special.ndtri(u) * np.sqrt(a), 0.0) ** 3)
    return out


def decision_power(delta, sd, n, nu, level, margin, g, cache: dict | None = None):
    """Chance that a look at n seeds (nu residual df) settles the row: arrays over n, nu."""
    n, nu = np.atleast_1d(np.asarray(n, dtype=float)), np.atleast_1d(np.asarray(nu, dtype=float))
    if not (sd > 0 and math.isfinite(delta)):
        return np.zeros(np.broadcast(n, nu).shape)
    se = sd / np.sqrt(n)
    k = crit(1.0 + g * n, nu, level)
    ratio = sd_ratios(np.broadcast_to(nu, n.shape).astype(float), cache)
    # in units of se: the half-width at each chi-square quantile, the mean, the margin
    rr = k[:, None] * ratio
    mu, m = (delta / se)[:, None], (margin / se)[:, None]

    def inside(x):  # P(|estimate| <= x)
        x = np.maximum(x, 0.0)
        return special.ndtr(x - mu) - special.ndtr(-x - mu)

    # equivalent: |estimate| <= m - rr; else better/worse: |estimate| > rr
    equivalent = np.where(m - rr > 0, inside(m - rr), 0.0)
    excluded = 1.0 - inside(np.maximum(rr, m - rr))
    return np.mean(equivalent + excluded, axis=1)


def seeds_needed(
    delta: float,
    sd: float,
    n_now: int,
    nu_now: float,
    level: float,
    margin: float,
    g: float,
    power: float = POWER,
    cache: dict | None = None,
) -> int | None:
    """Smallest n > n_now at which a look settles the row with chance >= power, taking
    delta and sd as the truth (nu grows by one per seed); None if more than MAX_SEEDS.

    The chance grows with n (a narrower interval around a tighter estimate), so n is found
    by galloping (n_now + 1, + 2, + 4, ...) and then bisecting: about 2·log2(MAX_SEEDS)
    evaluations instead of one per seed (a table asks this of every inconclusive row)."""

    def enough(n: int) -> bool:
        return bool(
            decision_power(delta, sd, n, nu_now + (n - n_now), level, margin, g)[0] >= power
        )

    low, step = n_now, 1  # low: a number of seeds known to be too few
    while True:
        high = min(n_now + step, MAX_SEEDS)
        if enough(high):
            break
        if high >= MAX_SEEDS:
            return None
        low, step = high, 2 * step
    while high - low > 1:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid
    return high
