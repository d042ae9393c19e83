"""What a plan hands the execution layer (`RunSpec`) and what comes back (`Outcome`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from model.train import TrainerHooks

from ..config import RunConfig
from ..tracking import RunState


@dataclass(frozen=True)
class RunSpec:
    """One run to have: a config (seed and corpus included), the child run's name and its
    tags (role, value, knob, trial, ...). The sweep it belongs to names the parent.

    `hooks` see the trainer's events after the MLflow logger (a pruner's); `stop_on`
    exceptions raised by them end the run PRUNED; `run_id` is a run already created for it
    (a search trial records its run in Optuna before training)."""

    cfg: RunConfig
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    hooks: Sequence[TrainerHooks] = ()
    stop_on: tuple[type[BaseException], ...] = ()
    run_id: str | None = None

    @property
    def config_hash(self) -> str:
        return self.cfg.config_hash()


@dataclass
class Outcome:
    """How a spec ended: its run, state, summary metrics and the reason if it did not finish.
    A reused spec points at its link run; `reused_from` names the run that trained it.
    `new` is False for a spec the sweep already had (resumed): nothing was recorded now."""

    run_id: str
    name: str
    state: RunState
    summary: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    reused_from: str | None = None
    new: bool = True
