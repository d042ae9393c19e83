"""`--trials N`: a budget for the whole study, whoever runs its trials.

Workers (local or remote, re-runs included) stop once the study holds N finished trials.
What counts: every trial except a FAIL that was retried (its retry stands for it) and a
rare surplus trial that lost a race for the last slot (it fails at once, untrained, and is
marked `sweep.surplus`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from .attrs import ATTR_SURPLUS


def retried_number(trial) -> int | None:
    """The number of the trial that `trial` retries (None if it is no retry)."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def counted(trials: list) -> list:
    """Trials that count against --trials: all but retried FAILs and surplus ones."""
    from optuna.trial import TrialState

    retried = {n for n in map(retried_number, trials) if n is not None}
    return [
        t
        for t in trials
        if not t.user_attrs.get(ATTR_SURPLUS)
        and not (t.state == TrialState.FAIL and t.number in retried)
    ]


@dataclass(frozen=True)
class Budget:
    finished: int
    running: int
    waiting: int

    def done(self, n: int) -> bool:
        return self.finished >= n

    def can_start(self, n: int) -> bool:
        return self.waiting > 0 or self.finished + self.running + self.waiting < n


def budget(trials: list) -> Budget:
    from optuna.trial import TrialState

    live = counted(trials)
    return Budget(
        finished=sum(t.state.is_finished() for t in live),
        running=sum(t.state == TrialState.RUNNING for t in live),
        waiting=sum(t.state == TrialState.WAITING for t in live),
    )
