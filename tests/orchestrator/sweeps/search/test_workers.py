"""Local worker processes sharing one study on the journal storage."""

from __future__ import annotations

import os

import pytest
from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_SURPLUS
from orchestrator.sweeps.search.context import worker_limit

pytestmark = pytest.mark.skipif(
    worker_limit()[0] < 2, reason=f"--workers 2 is refused here ({worker_limit()[1]})"
)


def test_two_local_workers_share_the_journal_storage(search_env, study_of):
    tracker, _, space = search_env
    res = run_search(
        env_of(tracker),
        trials=4,
        space=str(space),
        pruner="none",
        workers=2,
        seed=3,
        study_name="workers",
        plots=False,
    )
    trials = [
        t for t in study_of(tracker, "workers").get_trials() if not t.user_attrs.get(ATTR_SURPLUS)
    ]
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert all(t.state == TrialState.COMPLETE for t in trials)
    children = tracker.children(res.parent_id)
    assert sorted(int(r.tags[T.TAG_TRIAL]) for r in children) == sorted(t.number for t in trials)
    assert all(r.status == "FINISHED" for r in children)
    assert {r.tags[T.TAG_PID] for r in children} - {str(os.getpid())}, "trained in the workers"
    assert tracker.get_run(res.parent_id).status == "FINISHED"
