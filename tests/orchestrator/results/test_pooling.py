"""orchestrator.results.pooling: the pooled fits against a direct generalised least-squares
fit of the exchangeable model, and which data enter a row's sequence at each prefix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.results.pooling import (
    POOL_SEEDS,
    block,
    history_entry,
    members,
    own_fit,
    pooled_fits,
)


def _direct_gls(obs, target):
    """obs: [(row, position, value)]. Builds the covariance of every observation (s2 = 1:
    2 on the diagonal, 1 between two rows on one seed, since they share the baseline's
    noise), whitens by Cholesky and solves least squares with numpy: a second, independent
    implementation of the model."""
    rows = sorted({r for r, _, _ in obs})
    n = len(obs)
    cov = np.array([[2.0 if i == j else float(obs[i][1] == obs[j][1]) for j in range(n)]
                    for i in range(n)])  # fmt: skip
    x = np.array([[1.0 if r == row else 0.0 for row in rows] for r, _, _ in obs])
    y = np.array([v for _, _, v in obs])
    chol_inv = np.linalg.inv(np.linalg.cholesky(cov))
    xw, yw = chol_inv @ x, chol_inv @ y
    beta, *_ = np.linalg.lstsq(xw, yw, rcond=None)
    rss = float(np.sum((yw - xw @ beta) ** 2))
    v = np.linalg.inv(xw.T @ xw)
    t = rows.index(target)
    return beta[t], v[t, t], rss, n - len(rows)


def test_pooled_fit_matches_a_direct_gls_at_every_prefix():
    rng = np.random.default_rng(1)
    K, S = 3, 7
    d = rng.normal(0, 0.03, (1, K, S))
    mask = np.ones((K, S), dtype=bool)
    mask[2, 5:] = False  # row 2 stopped after 5 seeds (its later seeds never enter row 0)
    mask[0, 4] = False  # row 0 lacks seed 5 (a gap in its own sequence)
    hist = rng.normal(0, 0.03, (1, 2, S))
    hmask = np.zeros((2, S), dtype=bool)
    hmask[0, [0, 1, 2, 5]] = True
    hmask[1, [1, 3]] = True
    fit, _ = pooled_fits(d, mask, 0, hist, hmask)
    entry = history_entry(hmask, np.asarray(fit.nu[0]) * 0 + _table_df(mask, 0, S))
    for s in range(S):
        obs = [(j, p, d[0, j, p]) for j in range(K) for p in range(min(s + 1, POOL_SEEDS))]
        obs += [(0, p, d[0, 0, p]) for p in range(POOL_SEEDS, s + 1) if mask[0, p]]
        obs += [(K + h, p, hist[0, h, p]) for h in range(2) for p in range(S) if entry[h, p] <= s]
        beta, v, rss, nu = _direct_gls(obs, 0)
        assert fit.centre[0, s] == pytest.approx(beta, abs=1e-12)
        assert fit.v[0, s] == pytest.approx(v, rel=1e-10)
        assert fit.rss[0, s] == pytest.approx(rss, abs=1e-14)
        assert fit.nu[0, s] == nu


def _table_df(mask, k, S):
    """Observations minus rows of the table's part of row k's sequence, at every prefix."""
    mem = members(mask)
    out = []
    for s in range(S):
        n = len(mem) * min(s + 1, POOL_SEEDS)
        n += sum(mask[k, p] for p in range(POOL_SEEDS, s + 1))
        out.append(n - len(mem))
    return np.asarray(out)


def test_history_joins_at_most_as_fast_as_the_tables_own_degrees_of_freedom():
    hmask = np.zeros((2, 6), dtype=bool)
    hmask[:, :3] = True  # two arrays on seeds 1-3: 6 values, 2 means, 4 df
    entry = history_entry(hmask, np.array([0, 1, 2, 3, 4, 5]))
    # table df 0 at prefix 0 admits array 0's first value (it only begins its mean); df 1
    # its second; df 2 its third and array 1's first (again no df); df 3 array 1's second,
    # df 4 its third; later positions hold no history (6: never)
    assert entry.tolist() == [[0, 1, 2, 6, 6, 6], [2, 3, 4, 6, 6, 6]]
    assert (history_entry(hmask, np.full(6, -1)) == 6).all()  # no table df: none joins


def test_members_are_the_rows_with_every_block_seed():
    mask = np.ones((4, 6), dtype=bool)
    mask[1, 2] = False  # lacks seed 3: not in the pool
    mask[2, 4] = False  # lacks seed 5: still a member
    assert members(mask) == [0, 2, 3]
    assert pooled_fits(np.zeros((1, 4, 6)), mask, 1) is None


def test_one_row_alone_pools_nothing_and_equals_its_own_fit():
    rng = np.random.default_rng(2)
    d = rng.normal(0, 0.03, (5, 1, 8))
    mask = np.ones((1, 8), dtype=bool)
    own = own_fit(d, mask)
    fit, _ = pooled_fits(d, mask, 0)
    # pooled units: s2 with a difference of variance 2 s2 -> v doubles, rss halves
    assert np.allclose(fit.centre, own.centre[:, 0])
    assert np.allclose(fit.v, 2 * own.v[:, 0])
    assert np.allclose(fit.rss, own.rss[:, 0] / 2)
    assert np.allclose(fit.diff_var()[:, 1:], own.diff_var()[:, 0, 1:])


def test_own_fit_by_hand():
    d = np.array([[[0.1, 0.3, 0.2, math.nan]]])
    fit = own_fit(d, np.array([[True, True, True, False]]))
    assert fit.centre[0, 0].tolist() == pytest.approx([0.1, 0.2, 0.2, 0.2])
    assert fit.rss[0, 0].tolist() == pytest.approx([0.0, 0.02, 0.02, 0.02])  # 0.01 + 0.01
    assert fit.nu[0, 0].tolist() == [0, 1, 2, 2]
    assert fit.diff_var()[0, 0, 2] == pytest.approx(0.01)


def test_the_block_is_the_first_seeds_the_rows_have():
    """A confirmation on fresh seeds 4-6 against a baseline with seeds 1-6: the block is
    seeds 4-6, not the baseline's first three."""
    mask = np.zeros((3, 6), dtype=bool)
    mask[:, 3:] = True
    assert block(mask).tolist() == [False, False, False, True, True, True]
    assert members(mask) == [0, 1, 2]
    fit, _ = pooled_fits(np.random.default_rng(0).normal(0, 0.03, (1, 3, 6)), mask, 0)
    assert fit.nu[0].tolist() == [0, 0, 0, 0, 3, 6]  # 3 rows x (1, 2, 3) seeds - 3 means
