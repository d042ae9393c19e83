"""Trials of dead workers on the journal storage (no heartbeats): a dead pid on this host
fails the trial, which is retried once, and its MLflow run ends KILLED."""

from __future__ import annotations

import subprocess
import sys

from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.sweeps.search.attrs import ATTR_REASON, ATTR_RUN, ATTR_WORKER
from orchestrator.sweeps.search.budget import retried_number
from orchestrator.sweeps.search.context import Options
from orchestrator.sweeps.search.recovery import reconcile
from orchestrator.sweeps.search.study import prepare


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reconcile_fails_a_dead_local_workers_trial_retries_it_and_kills_its_run(search_env):
    import socket

    tracker, _, space = search_env
    ctx = prepare(
        env_of(tracker), Options(trials=2, space=str(space), pruner="none", study="recover")
    )
    trial = ctx.study.ask()  # trial 0 (the baseline's values), RUNNING as in a worker
    pid = dead_pid()
    trial.set_user_attr(ATTR_WORKER, f"{socket.gethostname()}:{pid}:{trial.number}")
    run_id = tracker.create_run("trial-0", parent_id=ctx.parent_id, tags={T.TAG_TRIAL: "0"})
    trial.set_user_attr(ATTR_RUN, run_id)

    reconcile(ctx)
    dead, retry = ctx.study.get_trials()
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs[ATTR_REASON] == f"worker process {pid} died mid-trial"
    assert retry.state == TrialState.WAITING and retry.params == dead.params
    assert retried_number(retry) == dead.number
    run = tracker.get_run(run_id)
    assert run.state is T.RunState.KILLED and "died mid-trial" in run.tags[T.TAG_REASON]
    reconcile(ctx)  # once only
    assert len(ctx.study.get_trials()) == 2
    tracker.end_run(ctx.parent_id, T.RunState.KILLED, "test over")
