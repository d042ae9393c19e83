"""Names a person picks from a short list (`--sampler`, `--pruner`, `--launcher`), as enums.

Torch-, optuna- and mlflow-free: the CLI types its options with these, so `sweep --help`
lists the choices without importing the packages behind them (search/samplers.py builds
the Optuna objects and re-exports the enums).
"""

from __future__ import annotations

from enum import StrEnum

from .errors import UserError


class Choice(StrEnum):
    """A closed set of names; `parse` turns a bad one into a one-line UserError."""

    @classmethod
    def parse(cls, name: str) -> Choice:
        """The member named `name`, or a one-line UserError that lists the known names."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise UserError(f"unknown {cls.noun()} '{name}'; choose one of: {known}") from None

    @classmethod
    def noun(cls) -> str:
        return cls.__name__.lower()


class Sampler(Choice):
    """Which point a trial tries."""

    TPE = "tpe"
    RANDOM = "random"
    CMAES = "cmaes"
    GRID = "grid"


class Pruner(Choice):
    """When a trial stops early."""

    HYPERBAND = "hyperband"
    MEDIAN = "median"
    NONE = "none"


class Fuse(Choice):
    """Whether same-shape runs of a command train as one fused group (model/fused/)."""

    AUTO = "auto"  # where the benchmark says it pays on this device and shape
    ON = "on"  # wherever memory allows
    OFF = "off"  # every run alone


class Launcher(Choice):
    """Where runs train: on this machine, or as the tasks of a Slurm job array."""

    LOCAL = "local"
    SLURM = "slurm"
