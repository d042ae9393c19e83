"""Training compute: FLOPs per step from a run's recorded config, and compute to target.

FLOPs per token, as nanoGPT's `estimate_mfu` and the PaLM paper count them: 6·N for the
forward and backward matmuls of the N non-embedding parameters, plus 12·L·d·T for the
attention scores (L layers, width d, context T). N = params − V·d − T·d (the token and
position embeddings: a lookup, not a matmul; with weight tying the output layer shares
the token embedding and is left out too, the usual "non-embedding" convention). Training
FLOPs = FLOPs per token × tokens seen (steps × batch_size × block_size). Compute to target
(`to_target.py`): the FLOPs a row needs to reach the baseline's best val loss on its seeds.
"""

from __future__ import annotations

import math

from ..tracking import RunInfo
from .to_target import ComputeToTarget, compute_to_target


def _num(run: RunInfo, key: str) -> float:
    raw = run.params.get(key)
    try:
        return float(raw) if raw is not None else math.nan
    except ValueError:
        return math.nan


def flops_per_token(
    n_params: float, n_layer: float, n_embed: float, block: float, vocab: float
) -> float:
    non_embedding = n_params - vocab * n_embed - block * n_embed
    return 6.0 * non_embedding + 12.0 * n_layer * n_embed * block


def flops_per_step(run: RunInfo) -> float:
    """Training FLOPs of one optimizer step of `run` (NaN when its config is not recorded)."""
    n_params = run.metrics.get("params", math.nan)
    block, batch = _num(run, "block_size"), _num(run, "batch_size")
    per_token = flops_per_token(
        n_params, _num(run, "n_layer"), _num(run, "n_embed"), block, _num(run, "dataset.vocab_size")
    )
    return per_token * batch * block


def train_flops(run: RunInfo) -> float:
    """FLOPs of the whole run: every step it trained."""
    return flops_per_step(run) * _num(run, "max_steps")


def mean_flops_per_step(runs: list[RunInfo]) -> float:
    """The mean FLOPs per step of runs (NaN when none is recorded)."""
    vals = [v for v in (flops_per_step(r) for r in runs) if math.isfinite(v)]
    return math.fsum(vals) / len(vals) if vals else math.nan


def row_to_target(
    base_curves: dict[int, list[tuple[int, float]]],
    curves: dict[int, list[tuple[int, float]]],
    base_runs: list[RunInfo],
    runs: list[RunInfo],
    seeds: list[int],
    level: float,
) -> ComputeToTarget:
    """Compute to target of a row on its seeds (`to_target.py`): both sides' curves on those
    seeds, resampled in pairs; the target is the baseline's best val loss on them."""
    have = [s for s in seeds if s in base_curves and s in curves]
    return compute_to_target(
        {s: base_curves[s] for s in have},
        {s: curves[s] for s in have},
        mean_flops_per_step(base_runs),
        mean_flops_per_step(runs),
        level,
    )
