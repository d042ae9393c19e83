"""Run states and roles: the one mapping from sweep states to MLflow statuses, on a real store."""

from __future__ import annotations

import pytest

from orchestrator import tracking as T
from orchestrator.tracking import Role, RunState


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (RunState.COMPLETE, "FINISHED"),
        (RunState.PRUNED, "FINISHED"),
        (RunState.DUPLICATE, "FINISHED"),
        (RunState.FAILED, "FAILED"),
        (RunState.KILLED, "KILLED"),
    ],
)
def test_end_run_records_the_state_and_its_mlflow_status(tracker, state, status):
    run_id = tracker.create_run("r", tags={T.TAG_ROLE: Role.ABLATION_RUN})
    assert tracker.get_run(run_id).state is RunState.RUNNING
    tracker.end_run(run_id, state, "why")
    run = tracker.get_run(run_id)
    assert run.status == status and run.tags[T.TAG_STATE] == state.value
    assert run.state is state and run.tags[T.TAG_REASON] == "why"


def test_a_reopened_run_is_running_whatever_its_old_tag_says(tracker):
    run_id = tracker.create_run("parent", tags={T.TAG_ROLE: Role.ABLATION})
    tracker.end_run(run_id, RunState.COMPLETE)
    tracker.reopen(run_id)
    assert tracker.get_run(run_id).state is RunState.RUNNING


def test_state_without_a_tag_follows_the_mlflow_status():
    assert RunState.from_run("FINISHED", None) is RunState.COMPLETE
    assert RunState.from_run("KILLED", "") is RunState.KILLED
    assert RunState.from_run("FAILED", "not-a-state") is RunState.FAILED
    assert RunState.from_run("RUNNING", "complete") is RunState.RUNNING


def test_roles():
    assert {r.value for r in Role if r.is_sweep} == {"ablation", "search", "confirm"}
    assert Role.BASELINE.trains and not Role.SEARCH.trains
