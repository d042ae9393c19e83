"""Several `sweep search` processes on one study: Optuna on PostgreSQL, MLflow on a real
`mlflow server` backed by PostgreSQL (as on several machines, here on one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
import services
from envs import TINY, env_of, short_corpus
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.config import build
from orchestrator.sweeps.baseline import record_baseline
from orchestrator.sweeps.search.attrs import ATTR_RUN, ATTR_SURPLUS
from orchestrator.sweeps.search.budget import counted, retried_number
from orchestrator.sweeps.search.context import worker_limit
from orchestrator.tracking import RunState, Tracker

pytestmark = pytest.mark.slow

SPACE = "[dropout]\nlow = 0.0\nhigh = 0.3\n[lr]\nlow = 3e-4\nhigh = 3e-3\nlog = true\n"


@pytest.fixture
def optuna_db(pg_admin_url):
    """A second throw-away database for Optuna (MLflow's server has its own)."""
    name = services.unique_db_name("sweep_optuna")
    url = services.create_database(pg_admin_url, name)
    try:
        yield url
    finally:
        services.drop_database(pg_admin_url, name)


def setup(tmp_path, server, corpus_path, max_steps):
    corpus = short_corpus(corpus_path, tmp_path)
    tiny = {**TINY, "max_steps": str(max_steps)}
    tracker = Tracker(server, "char-gpt")
    assert record_baseline(env_of(tracker), build("smoke", tiny, data=str(corpus))).ok
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    return tracker, space


def launch(tmp_path, name, server, storage, space, trials):
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "search",
        "--trials",
        str(trials),
        "--space",
        str(space),
        "--study",
        "shared",
        "--storage",
        storage,
        "--tracking-uri",
        server,
        "--pruner",
        "none",
    ]
    env = {**os.environ, "SWEEP_HEARTBEAT_S": "1"}
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT), log


def finish(procs, timeout=240):
    codes = []
    for p, log in procs:
        try:
            codes.append(p.wait(timeout))
        finally:
            if p.poll() is None:
                p.kill()
            log.close()
    return codes


def parent_of(tracker):
    parents = tracker.search(f"tags.`{T.TAG_ROLE}` = 'search'")
    assert len(parents) == 1, [p.name for p in parents]
    return parents[0]


def test_two_processes_join_one_study_on_postgresql(
    tmp_path, mlflow_server_pg, optuna_db, corpus_path
):
    tracker, space = setup(tmp_path, mlflow_server_pg, corpus_path, max_steps=12)
    n = 4
    procs = [launch(tmp_path, f"w{i}", mlflow_server_pg, optuna_db, space, n) for i in range(2)]
    codes = finish(procs)
    logs = {p.name: p.read_text() for p in tmp_path.glob("w*.log")}
    assert codes == [0, 0], logs

    study = optuna.load_study(study_name="shared", storage=optuna_db)
    trials = counted(study.get_trials())
    assert len(trials) == n and len({t.number for t in trials}) == n, logs
    assert all(t.state == TrialState.COMPLETE for t in trials)
    surplus = [t for t in study.get_trials() if t.user_attrs.get(ATTR_SURPLUS)]
    assert all(ATTR_RUN not in t.user_attrs for t in surplus)

    parent = parent_of(tracker)
    children = tracker.children(parent.run_id)
    assert Counter(int(r.tags[T.TAG_TRIAL]) for r in children) == Counter(t.number for t in trials)
    # trial 0 is the baseline's own point: linked to the baseline's run, the others trained
    assert all(r.status == "FINISHED" and r.state.has_result for r in children)
    assert [r.state for r in children if r.tags[T.TAG_TRIAL] == "0"] == [RunState.REUSED]
    assert len({r.tags[T.TAG_PID] for r in children}) == 2, "both processes had trials"
    assert not tracker.search("attributes.status = 'RUNNING'")
    assert tracker.get_run(parent.run_id).status == "FINISHED"


def test_a_worker_killed_mid_trial_is_failed_by_heartbeat_retried_and_its_run_killed(
    tmp_path, mlflow_server_pg, optuna_db, corpus_path
):
    # 200 steps: the victim is still mid-trial when the SIGKILL comes, even on a loaded machine
    tracker, space = setup(tmp_path, mlflow_server_pg, corpus_path, max_steps=200)
    n = 4
    victim, log_v = launch(tmp_path, "victim", mlflow_server_pg, optuna_db, space, n)
    # wait until the victim trains a trial and has logged at least one eval
    killed_run = None
    deadline = time.monotonic() + 120
    while killed_run is None and time.monotonic() < deadline:
        assert victim.poll() is None, (tmp_path / "victim.log").read_text()
        for run in tracker.search(
            f"tags.`{T.TAG_ROLE}` = 'search-trial' and attributes.status = 'RUNNING'"
        ):
            # trial 0 is the baseline's point: its run is a link, RUNNING for the moment
            # it takes to copy the baseline's curves in, never trained
            mine = run.tags.get(T.TAG_PID) == str(victim.pid) and run.tags.get(T.TAG_TRIAL) != "0"
            if mine and "val_loss" in run.metrics:
                killed_run = run
                break
        time.sleep(0.1)
    assert killed_run is not None, "the victim never got mid-trial"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(30)
    log_v.close()
    survivor = launch(tmp_path, "survivor", mlflow_server_pg, optuna_db, space, n)
    assert finish([survivor]) == [0], (tmp_path / "survivor.log").read_text()

    study = optuna.load_study(study_name="shared", storage=optuna_db)
    all_trials = study.get_trials()
    dead_number = int(killed_run.tags[T.TAG_TRIAL])
    dead = all_trials[dead_number]
    assert dead.state == TrialState.FAIL
    retries = [t for t in all_trials if retried_number(t) == dead_number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead.params
    trials = counted(all_trials)
    assert len(trials) == n and all(t.state == TrialState.COMPLETE for t in trials)

    run = tracker.get_run(killed_run.run_id)
    assert (
        run.status == "KILLED"
        and run.state == "killed"
        and "died mid-trial" in run.tags[T.TAG_REASON]
    )
    children = tracker.children(parent_of(tracker).run_id)
    finished = [r for r in children if r.run_id != killed_run.run_id]
    assert Counter(int(r.tags[T.TAG_TRIAL]) for r in finished) == Counter(t.number for t in trials)
    assert all(r.status == "FINISHED" for r in finished)
    assert not tracker.search("attributes.status = 'RUNNING'")


@pytest.mark.skipif(worker_limit()[0] < 2, reason="--workers 2 is refused on this machine")
def test_local_workers_connect_to_a_password_protected_store(pg_database, corpus_path, tmp_path):
    """The tracking store is a PostgreSQL database with a password: the workers connect with
    the real URL (Tracker.connect_uri), while every message shows it masked (Tracker.uri).
    Before, the workers were handed the masked URL and could not log in."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    common = ["--tracking-uri", pg_database]
    tiny = ["--set", "max_steps=8", "--set", "eval_every=4", "--set", "eval_iters=2"]
    search = ["--seed", "1", "--pruner", "none"]
    for args in (
        ["baseline", "--profile", "smoke", "--data", str(corpus_path), *tiny],
        ["search", "--space", str(space), "--trials", "3", "--workers", "2", *search],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args, *common],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert ":sweep@" not in out  # the password is never shown
    assert "3 complete" in r.stdout, r.stdout
    tracker = Tracker(pg_database, "char-gpt", create=False)
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{T.Role.SEARCH}'")
    assert parent.state is T.RunState.COMPLETE
