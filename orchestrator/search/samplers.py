"""Which point a trial tries (the sampler) and when a trial stops early (the pruner)."""

from __future__ import annotations

from enum import StrEnum

from ..config import RunConfig
from ..errors import UserError
from .space import Space


class _Choice(StrEnum):
    @classmethod
    def parse(cls, name: str) -> _Choice:
        """The member named `name`, or a one-line UserError that lists the known names."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise UserError(f"unknown {cls.noun()} '{name}'; choose one of: {known}") from None

    @classmethod
    def noun(cls) -> str:
        return cls.__name__.lower()


class Sampler(_Choice):
    TPE = "tpe"
    RANDOM = "random"
    CMAES = "cmaes"
    GRID = "grid"


class Pruner(_Choice):
    HYPERBAND = "hyperband"
    MEDIAN = "median"
    NONE = "none"


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
    return optuna.samplers.GridSampler(space.grid(), seed=seed)


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
