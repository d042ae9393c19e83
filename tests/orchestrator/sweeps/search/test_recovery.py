"""Trials of dead workers on the journal storage (no heartbeats): a dead pid on this host
fails the trial, which is retried once, and its MLflow run ends KILLED."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_REASON, ATTR_RUN, ATTR_WORKER
from orchestrator.sweeps.search.budget import retried_number
from orchestrator.sweeps.search.context import Options, Unnamed
from orchestrator.sweeps.search.recovery import reconcile
from orchestrator.sweeps.search.study import prepare


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reconcile_fails_a_dead_local_workers_trial_retries_it_and_kills_its_run(search_env):
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


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_trial_whose_worker_died_as_optuna_created_it_is_failed_after_a_while(search_env):
    """Killed inside `study.ask` (SIGKILL, the OOM killer): the trial names no worker and has
    no heartbeat, so nothing else would ever end it."""
    tracker, _, space = search_env
    ctx = prepare(
        env_of(tracker), Options(trials=3, space=str(space), pruner="none", study="unnamed")
    )
    clock = Clock()
    ctx.unnamed = Unnamed(limit_s=30, clock=clock)
    orphan = ctx.study.ask()  # RUNNING; its worker died before naming itself
    live = ctx.study.ask()  # RUNNING, and a moment later named by its live worker
    reconcile(ctx)
    clock.now = 20.0
    live.set_user_attr(ATTR_WORKER, f"{socket.gethostname()}:{os.getpid()}:{live.number}")
    reconcile(ctx)
    assert [t.state for t in ctx.study.get_trials()] == [TrialState.RUNNING] * 2  # not yet
    clock.now = 31.0
    reconcile(ctx)
    dead, named, retry = ctx.study.get_trials()
    assert dead.number == orphan.number and dead.state == TrialState.FAIL
    assert dead.user_attrs[ATTR_REASON] == (
        "its worker died as Optuna created it (no worker named in 30 s)"
    )
    assert named.state == TrialState.RUNNING  # a named trial is the heartbeat's or the pid's
    assert retry.state == TrialState.WAITING and retried_number(retry) == orphan.number
    tracker.end_run(ctx.parent_id, T.RunState.KILLED, "test over")


def test_a_search_does_not_wait_forever_for_a_trial_nobody_runs(search_env, monkeypatch):
    """The budget counts a RUNNING trial as taken: one whose worker died in `study.ask` held
    the last slot, and the search waited until its timeout (or forever) for it."""
    tracker, _, space = search_env
    monkeypatch.setenv("SWEEP_HEARTBEAT_S", "1")  # unnamed for 10 heartbeats: 10 s
    ctx = prepare(
        env_of(tracker), Options(trials=2, space=str(space), pruner="none", study="orphaned")
    )
    ctx.study.ask()  # trial 0 (the baseline's point), left RUNNING by a worker that died
    tracker.end_run(ctx.parent_id, T.RunState.KILLED, "its command was killed too")
    res = run_search(
        env_of(tracker), trials=2, space=str(space), pruner="none", study_name="orphaned",
        timeout=120, plots=False,
    )  # fmt: skip
    trials = ctx.study.get_trials()
    assert (
        trials[0].state == TrialState.FAIL
        and "as Optuna created it" in trials[0].user_attrs[ATTR_REASON]
    )
    assert res.counts["complete"] == 2, res.counts
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state == TrialState.RUNNING]
