"""Compute to target, with its uncertainty: the training FLOPs a variant needs to reach the
baseline's best val loss, relative to what the baseline needs, and a seed-bootstrap interval.

Each side's val-loss curve is the mean over its seeds at the eval steps every one of them has
(finite values). The target is the best (lowest) point of the baseline's mean curve: the
baseline's mean best val loss when its seeds reach their best at the same eval (the usual
case: the last one), and a little above it otherwise, so that the baseline itself always
reaches the target (the mean of per-seed bests lies below every point of the mean curve
when the bests fall at different evals). A side reaches the target at the first crossing of
its mean curve, linear in step between the two evals that straddle it; a side that is
already below it at its first eval reaches it there. The ratio is

    (variant steps to target · variant FLOPs per step) / (baseline steps · baseline FLOPs per step),

inf when the variant never reaches the target. The interval resamples seeds with replacement
(the same seeds for both sides when both have the same seeds, so pairing cancels what a seed
does to both runs; each side on its own otherwise), recomputes target and ratio, and takes
the level/2 and 1 - level/2 order statistics of n_boot resamples (a fixed numpy seed, so a
table is reproducible). `format_ratio` prints `≈1.00x` when the interval covers 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Curve = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class ComputeToTarget:
    ratio: float  # variant FLOPs to reach the target / baseline FLOPs (inf: never; NaN: no data)
    low: float  # seed-bootstrap interval of the ratio, at 1 - level
    high: float
    target: float  # the val loss to reach
    base_step: float  # interpolated steps at which each side's mean curve reaches it
    variant_step: float
    level: float

    def label(self) -> str:
        return format_ratio(self.ratio, self.low, self.high)


def format_ratio(ratio: float, low: float, high: float) -> str:
    """`≈1.00x` when the interval covers 1, `never` when not reached, else e.g. `0.67x`."""
    if math.isnan(ratio):
        return ""
    if low <= 1.0 <= high:
        return "≈1.00x"
    return "never" if math.isinf(ratio) else f"{ratio:.2f}x"


def _matrix(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """Steps every curve has a finite value at, and the values [seeds, steps]."""
    tables = [{int(s): float(v) for s, v in c if math.isfinite(v)} for c in curves]
    steps = sorted(set.intersection(*(set(t) for t in tables))) if tables else []
    return np.asarray(steps, dtype=float), np.asarray([[t[s] for s in steps] for t in tables])


def first_crossing(steps: np.ndarray, values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Interpolated step at which each curve (rows of values) first reaches its target; inf
    if never."""
    values = np.atleast_2d(values)
    target = np.broadcast_to(np.asarray(target, dtype=float), values.shape[:1])
    below = values <= target[:, None] + 1e-12 * np.abs(target[:, None])
    reached = below.any(axis=1)
    i = np.argmax(below, axis=1)
    prev = np.maximum(i - 1, 0)
    rows = np.arange(values.shape[0])
    v0, v1 = values[rows, prev], values[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(v0 > v1, (v0 - target) / (v0 - v1), 1.0)
    step = np.where(i == 0, steps[0], steps[prev] + np.clip(frac, 0, 1) * (steps[i] - steps[prev]))
    return np.where(reached, step, np.inf)


def _ratios(bsteps, bvals, vsteps, vvals, b_idx, v_idx, base_flops, variant_flops):
    """Target, base step, variant step and ratio for each row of resampled seed indices."""
    bmean, vmean = bvals[b_idx].mean(axis=1), vvals[v_idx].mean(axis=1)
    target = bmean.min(axis=1)
    b_step = first_crossing(bsteps, bmean, target)
    v_step = first_crossing(vsteps, vmean, target)
    return target, b_step, v_step, (v_step * variant_flops) / (b_step * base_flops)


def compute_to_target(
    base_curves: Mapping[int, Curve] | Sequence[Curve],
    variant_curves: Mapping[int, Curve] | Sequence[Curve],
    base_flops_per_step: float,
    variant_flops_per_step: float,
    level: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> ComputeToTarget:
    """Compute to target of one variant row. Curves: per seed, [(step, val_loss), ...]; as
    {seed: curve} mappings they are resampled in pairs when both sides have the same seeds."""
    paired = (
        isinstance(base_curves, Mapping)
        and isinstance(variant_curves, Mapping)
        and set(base_curves) == set(variant_curves)
    )
    if isinstance(base_curves, Mapping):
        order = sorted(base_curves)
        base_list = [base_curves[s] for s in order]
        variant_list = (
            [variant_curves[s] for s in order] if paired else list(variant_curves.values())
        )
    else:
        base_list, variant_list = list(base_curves), list(variant_curves)
    bsteps, bvals = _matrix(base_list)
    vsteps, vvals = _matrix(variant_list)
    flops = (float(base_flops_per_step), float(variant_flops_per_step))
    if bsteps.size == 0 or vsteps.size == 0 or not all(f > 0 for f in flops):
        nan = math.nan
        return ComputeToTarget(nan, nan, nan, nan, nan, nan, level)
    nb, nv = bvals.shape[0], vvals.shape[0]
    t, bs, vs, r = _ratios(bsteps, bvals, vsteps, vvals, [np.arange(nb)], [np.arange(nv)], *flops)
    rng = np.random.default_rng(seed)
    b_idx = rng.integers(0, nb, size=(n_boot, nb))
    v_idx = b_idx if paired else rng.integers(0, nv, size=(n_boot, nv))
    boot = np.sort(_ratios(bsteps, bvals, vsteps, vvals, b_idx, v_idx, *flops)[3])
    low = boot[math.floor(level / 2 * n_boot)]
    high = boot[min(n_boot - 1, math.ceil((1 - level / 2) * n_boot) - 1)]
    return ComputeToTarget(float(r[0]), float(low), float(high), float(t[0]), float(bs[0]),
                           float(vs[0]), level)  # fmt: skip
