"""Training compute: FLOPs per step from a run's recorded config, and compute to target.

FLOPs per token, as nanoGPT's `estimate_mfu` and the PaLM paper count them: 6·N for the
forward and backward matmuls of the N non-embedding parameters, plus 12·L·d·T for the
attention scores (L layers, width d, context T). N = params − V·d − T·d (the token and
position embeddings: a lookup, not a matmul; with weight tying the output layer shares
the token embedding and is left out too, the usual "non-embedding" convention). Training
FLOPs = FLOPs per token × tokens seen (steps × batch_size × block_size).
"""

from __future__ import annotations

import math

from ..tracking import RunInfo


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


def first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    """The first eval step whose value is at or below `target`."""
    for step, value in curve:
        if value <= target:
            return step
    return None


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The mean across seeds at the steps every seed evaluated."""
    curves = [c for c in curves if c]
    if not curves:
        return []
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    tables = [dict(c) for c in curves]
    return [(s, math.fsum(t[s] for t in tables) / len(tables)) for s in common]
