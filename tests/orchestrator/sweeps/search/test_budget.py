"""What counts against --trials, on real Optuna trials (an in-memory study)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState, create_trial

from orchestrator.sweeps.search.attrs import ATTR_SURPLUS
from orchestrator.sweeps.search.budget import Budget, budget, counted

DIST = {"x": FloatDistribution(0.0, 1.0)}


def add(study, state, **kw):
    values = {"value": 1.0} if state == TrialState.COMPLETE else {}
    study.add_trial(
        create_trial(state=state, params={"x": 0.5}, distributions=DIST, **values, **kw)
    )
    return study.get_trials()[-1]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_retried_fail_and_a_surplus_trial_do_not_count():
    study = optuna.create_study()
    add(study, TrialState.COMPLETE)
    dead = add(study, TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback(max_retry=1)(study, dead)  # what a lost worker gets
    add(study, TrialState.FAIL, user_attrs={ATTR_SURPLUS: True})
    add(study, TrialState.FAIL)  # a plain failure counts
    trials = study.get_trials()
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.WAITING,  # the retry
        TrialState.FAIL,
        TrialState.FAIL,
    ]
    assert [t.number for t in counted(trials)] == [0, 2, 4]
    assert budget(trials) == Budget(finished=2, running=0, waiting=1)


def test_budget_done_and_can_start():
    assert Budget(finished=3, running=0, waiting=0).done(3)
    assert not Budget(finished=2, running=1, waiting=0).done(3)
    assert not Budget(finished=2, running=1, waiting=0).can_start(3)  # the last slot is taken
    assert Budget(finished=2, running=1, waiting=1).can_start(3)  # a retry waits: run it
    assert Budget(finished=1, running=1, waiting=0).can_start(3)
