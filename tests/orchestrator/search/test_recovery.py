"""Trials of dead workers on the journal storage (no heartbeats): a dead pid on this host
fails the trial, which is retried once, and its MLflow run ends KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.baseline import record_baseline
from orchestrator.config import build
from orchestrator.search import run_search
from orchestrator.search.attrs import ATTR_REASON, ATTR_RUN, ATTR_WORKER
from orchestrator.search.budget import retried_number
from orchestrator.search.context import Options
from orchestrator.search.recovery import reconcile
from orchestrator.search.study import prepare
from orchestrator.tracking import Tracker


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reconcile_fails_a_dead_local_workers_trial_retries_it_and_kills_its_run(search_env):
    import socket

    tracker, _, space = search_env
    ctx = prepare(tracker, Options(trials=2, space=str(space), pruner="none", study="recover"))
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


@pytest.mark.slow
def test_a_worker_killed_mid_trial_on_the_journal_storage_is_retried_and_its_run_killed(
    tmp_path, corpus_path, tiny, space_text, study_of
):
    """The embedded storage has no heartbeats: a dead pid on this host stands for them."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_path.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "char-gpt")
    long = {**tiny, "max_steps": "600", "eval_every": "20"}
    assert record_baseline(tracker, build("smoke", long, data=str(corpus))).ok
    space = tmp_path / "space.toml"
    space.write_text(space_text, encoding="utf-8")
    args = [
        "search",
        "--trials",
        "1",
        "--space",
        str(space),
        "--study",
        "killed",
        "--tracking-uri",
        uri,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and proc.poll() is None
        running = [
            r
            for r in tracker.search("attributes.status = 'RUNNING'")
            if r.tags.get(T.TAG_ROLE) == "search-trial"
        ]
        victim = next((r for r in running if "val_loss" in r.metrics), None)
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)

    res = run_search(tracker, trials=1, space=str(space), study_name="killed", plots=False)
    trials = study_of(tracker, "killed").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "died mid-trial" in trials[0].user_attrs[ATTR_REASON]
    assert trials[1].params == trials[0].params  # retried once, same point
    assert tracker.get_run(trials[1].user_attrs[ATTR_RUN]).tags[T.TAG_RETRY_OF] == "0"
    killed = tracker.get_run(victim.run_id)
    assert killed.status == "KILLED" and "died mid-trial" in killed.tags[T.TAG_REASON]
    runs = tracker.children(res.parent_id)
    assert not [r for r in runs if r.status == "RUNNING"]
    assert sorted(r.status for r in runs) == ["FINISHED", "KILLED"]
    assert tracker.get_run(res.parent_id).status == "FINISHED"
    assert res.counts["retried"] == 1
