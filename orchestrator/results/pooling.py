"""The noise scale of a table's rows, one row at a time or pooled: the fits the anytime
confidence sequences of `anytime.py` are built from.

Arrays, batched over simulated tables: d[r, k, p] is row k's paired difference (variant minus
baseline best val loss) at seed position p of table r (the table's seeds in sorted order);
mask[k, p] says which of them exist and are finite (one pattern for the batch). A *prefix* s
is everything up to and including seed position s. Every fit is given at every prefix, so a
caller reads a row at the prefix of its last seed, and the benchmark reads any look pattern
off one computation.

Own fit (one row alone)
    The row's n differences at the prefix: mean, SS = sum of squared deviations, nu = n - 1
    residual degrees of freedom, v = 1/n, in units of the variance of one difference.

Pooled fit (exchangeable run noise)
    Model: every run's loss is a seed effect (data order and initialisation, shared by every
    run of that seed) plus the configuration's effect plus independent noise of one common
    variance s2 (the classical randomised-block model, seeds as blocks). Differences against
    the baseline on one seed then share the baseline's noise: the m rows present on a seed
    have covariance s2 (I + J) (J all ones), whose inverse is (I - J/(m+1)) / s2. The
    generalised least-squares fit of one mean per row gives each row's estimate, its
    variance v·s2 and a residual sum of squares with nu = observations - rows degrees of
    freedom, in units of s2 (a difference has variance 2·s2).

    Which data, so that the pooled sequence of row k is one fixed sequence of observations
    (what Ville's inequality needs, see `anytime.py`): first the *block*, the table's first
    POOL_SEEDS seeds that any row has (seeds 1-3 of an ablation; the fresh seeds of a
    confirmation) for every member row in seed order, then row k's own later seeds, one at a
    time. Members are the rows that have every block seed (observed and finite): what other
    rows do after the block never enters row k's fit, so stopping them (until-clear) or
    adding seeds to them changes nothing of row k's sequence. The history (earlier paired
    differences against the same baseline, array by array, seed by seed) joins in that
    order as the sequence goes: after each of row k's observations, as many history values
    as keep the history's degrees of freedom at most those of the table's own data. A fixed
    rule, so the sequence stays fixed, and a history whose noise differs from the table's
    can at most halve or double the pooled variance's information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POOL_SEEDS = 3  # seeds of every row that enter every other row's pooled fit


@dataclass(frozen=True)
class Fit:
    """One row's fit at every prefix: arrays [tables, prefixes] (or [tables, rows, prefixes])."""

    centre: np.ndarray  # estimate of the row's mean difference
    v: np.ndarray  # variance of the estimate, in units of the model's noise variance
    rss: np.ndarray  # residual sum of squares, same units
    nu: np.ndarray  # residual degrees of freedom
    unit: float  # variance of one paired difference, in those units (1 own, 2 pooled)

    def diff_var(self) -> np.ndarray:
        """Estimated variance of one paired difference (NaN without residual df)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.nu >= 1, self.unit * self.rss / np.maximum(self.nu, 1), np.nan)


def own_fit(d: np.ndarray, mask: np.ndarray) -> Fit:
    """Each row alone: d [R, K, S], mask [K, S] -> Fit with arrays [R, K, S]."""
    x = np.where(mask, d, 0.0)
    n = np.cumsum(mask, axis=-1).astype(float)
    s1, s2 = np.cumsum(x, axis=-1), np.cumsum(x * x, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.where(n > 0, s1 / n, np.nan)
        rss = np.maximum(s2 - s1 * centre, 0.0)
        v = np.where(n > 0, 1.0 / n, np.inf)
    nu = np.broadcast_to(np.maximum(n - 1, 0), centre.shape)
    return Fit(centre, np.broadcast_to(v, centre.shape), np.where(n > 1, rss, 0.0), nu, 1.0)


def block(mask: np.ndarray) -> np.ndarray:
    """[S] bool: the block, the first POOL_SEEDS positions at which some row has a pair."""
    out = np.zeros(mask.shape[1], dtype=bool)
    out[np.flatnonzero(mask.any(axis=0))[:POOL_SEEDS]] = True
    return out


def members(mask: np.ndarray) -> list[int]:
    """Rows that have every block seed."""
    in_block = block(mask)
    return [k for k in range(mask.shape[0]) if in_block.any() and mask[k, in_block].all()]


def _gls(data: np.ndarray, entry: np.ndarray, target: int) -> Fit:
    """GLS fit of one mean per data row under the exchangeable model, at every prefix.

    data [R, P, S]; entry [P, S]: the first prefix at which each value is in the fit (a
    value at position p and an entry >= S never is). A row without a value in the fit yet
    is left out of the model (an identity block for its mean). The target row must have
    values from prefix 0 on. Returns its Fit, arrays [R, S].
    """
    R, n_par, S = data.shape
    x = np.where(np.isfinite(data), data, 0.0)
    A, b, q = np.zeros((n_par, n_par)), np.zeros((R, n_par)), np.zeros(R)
    out_a, out_b, out_q, out_n = [], [], [], []
    for s in range(S):
        for p in np.flatnonzero((entry == s).any(axis=0)):  # positions whose set grew
            for sign, present in ((-1.0, entry[:, p] < s), (1.0, entry[:, p] <= s)):
                idx = np.flatnonzero(present)
                if idx.size == 0:
                    continue
                w = np.eye(idx.size) - 1.0 / (idx.size + 1)  # inverse covariance / s2
                xp = x[:, idx, p]
                A[np.ix_(idx, idx)] += sign * w
                b[:, idx] += sign * (xp @ w)
                q += sign * np.einsum("ri,ij,rj->r", xp, w, xp)
        idle = ~(entry <= s).any(axis=1)
        out_a.append(A + np.diag(idle.astype(float)))
        out_b.append(b.copy())
        out_q.append(q.copy())
        out_n.append((entry <= s).sum() - (~idle).sum())
    Ainv = np.linalg.inv(np.stack(out_a))
    bs = np.stack(out_b, axis=1)  # [R, S, P]
    bhat = np.einsum("rsp,spq->rsq", bs, Ainv)
    rss = np.maximum(np.stack(out_q, axis=1) - np.einsum("rsp,rsp->rs", bhat, bs), 0.0)
    nu = np.broadcast_to(np.asarray(out_n, dtype=float), (R, S))
    return Fit(bhat[:, :, target], np.broadcast_to(Ainv[:, target, target], (R, S)), rss, nu, 2.0)


def history_entry(hmask: np.ndarray, table_df: np.ndarray) -> np.ndarray:
    """When each history value joins: array by array, seed by seed, as many as keep the
    history's df (values - arrays begun) at most the table's df at that prefix."""
    S = hmask.shape[1]
    entry = np.full(hmask.shape, S, dtype=int)
    order = [(h, p) for h in range(hmask.shape[0]) for p in np.flatnonzero(hmask[h])]
    begun, used = set(), 0
    for s in range(S):
        while used < len(order):
            h, _ = order[used]
            df = used + 1 - len(begun | {h})
            if df > table_df[s]:
                break
            entry[order[used]] = s
            begun.add(h)
            used += 1
    return entry


def pooled_fits(
    d: np.ndarray,
    mask: np.ndarray,
    k: int,
    hist: np.ndarray | None = None,
    hmask: np.ndarray | None = None,
) -> tuple[Fit, Fit] | None:
    """Row k's pooled fit at every prefix (arrays [R, S]), and the fit of the rest of its
    pool (the other members' block seeds and the whole history, for the check of
    `anytime.py`); None when row k is not a member. hist [R, H, S] / hmask [H, S]: history
    differences on the table's seed positions."""
    R, _, S = d.shape
    mem = members(mask)
    if k not in mem:
        return None
    if hist is None or hmask is None:
        hist, hmask = np.zeros((R, 0, S)), np.zeros((0, S), dtype=bool)
    hist, hmask = hist[:, hmask.any(axis=1)], hmask[hmask.any(axis=1)]
    H, M, in_block = hmask.shape[0], len(mem), block(mask)
    pos = np.arange(S)
    entry = np.tile(np.where(in_block, pos, S), (M, 1))  # members: their block seeds, in order
    ik = mem.index(k)
    entry[ik] = np.where(in_block | mask[k], pos, S)
    table_df = (entry <= pos[:, None, None]).sum(axis=(1, 2)) - M  # at every prefix
    h_entry = history_entry(hmask, table_df)
    data = np.concatenate([d[:, mem], hist], axis=1)
    fit = _gls(data, np.concatenate([entry, h_entry]), ik)
    others = [j for j in range(M + H) if j != ik]
    if not others:
        return fit, fit
    rest = np.concatenate([np.where(in_block, 0, S)[None].repeat(M, 0), np.where(hmask, 0, S)])
    return fit, _gls(data[:, others], rest[others], 0)


def history_fits(
    d: np.ndarray, mask: np.ndarray, hist: np.ndarray, hmask: np.ndarray
) -> tuple[Fit, Fit] | None:
    """The noise of the table's member rows on all their seeds so far (at every prefix) and
    of the whole history alone, for the check that the history is not quieter than the
    table; None without history or members."""
    mem = members(mask)
    keep = hmask.any(axis=1)
    if not mem or not keep.any():
        return None
    S = d.shape[2]
    table = _gls(d[:, mem], np.where(mask[mem], np.arange(S), S), 0)
    hist_only = _gls(hist[:, keep], np.where(hmask[keep], 0, S), 0)
    return table, hist_only
