"""Which point a trial tries (the sampler) and when a trial stops early (the pruner).

`--sampler grid` trains every point of the grid exactly once. The grid is the space's lists
widened by the baseline's own values (space.anchored), so the baseline's point is always one
of its points: trial 0. The grid's points are enqueued in the study (Optuna's public
`enqueue_trial`, in a shuffled order, `--seed`), trial 0 first; a worker takes the next one
waiting, so no point is trained twice, whichever worker takes it. The budget is the grid's
size, or `--trials` if lower (then the points enqueued are the first `--trials` of that
order; a re-run with a larger `--trials` enqueues more). Optuna's GridSampler is not used:
it hands trial number k grid point k whatever trial 0 was, so the baseline's point was
trained twice and another point never.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from ...choices import Pruner, Sampler
from ...config import RunConfig
from .space import Space

__all__ = ["Pruner", "Sampler", "grid_points", "make_pruner", "make_sampler"]


def make_sampler(name: str, space: Space, seed: int | None, n_trials: int | None = None):
    import optuna

    kind = Sampler.parse(name)
    if kind is Sampler.TPE:
        startup = 10 if n_trials is None else max(3, min(10, n_trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if kind is Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if kind is Sampler.CMAES:
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    space.grid()  # every key a list, or a UserError
    # Grid trials are enqueued (grid_points): this sampler draws only for a surplus trial,
    # which fails before it samples anything.
    return optuna.samplers.RandomSampler(seed=seed)


def grid_points(space: Space, seed: int | None) -> list[dict[str, Any]]:
    """Every point of the (anchored) grid, shuffled by `seed`: the order trials take them."""
    grid = space.grid()
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    random.Random(seed or 0).shuffle(points)
    return points


def make_pruner(name: str, base: RunConfig):
    import optuna

    kind = Pruner.parse(name)
    every, total = base.train.eval_every, base.train.max_steps
    if kind is Pruner.HYPERBAND:
        # No verdict before a third of the run: early in training (warmup, bigger models that
        # start slower) curves still cross. With a ninth, benchmarks/search_efficiency.py saw
        # the grid's best config pruned and never found again for one sampler seed in three.
        first = min(total, max(every, (total // 3) // every * every))
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=total, reduction_factor=3
        )
    if kind is Pruner.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    return optuna.pruners.NopPruner()
