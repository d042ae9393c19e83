"""A `sweep search` process SIGKILLed mid-trial on the embedded journal storage: the next
search fails its trial, retries it once and ends its MLflow run KILLED (the unit tests of
the recovery are in tests/orchestrator/sweeps/search/test_recovery.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from envs import TINY, env_of, short_corpus
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.config import build
from orchestrator.studies import open_storage
from orchestrator.sweeps.baseline import record_baseline
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_REASON, ATTR_RUN
from orchestrator.tracking import Tracker

pytestmark = pytest.mark.slow

# as tests/orchestrator/conftest.py: smoke made smaller still, a two-key space
SPACE = "[dropout]\nlow = 0.0\nhigh = 0.3\n[lr]\nlow = 3e-4\nhigh = 3e-3\nlog = true\n"


def test_a_worker_killed_mid_trial_on_the_journal_storage_is_retried_and_its_run_killed(
    tmp_path, corpus_path
):
    """The embedded storage has no heartbeats: a dead pid on this host stands for them."""
    corpus = short_corpus(corpus_path, tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "char-gpt")
    long = {**TINY, "max_steps": "600", "eval_every": "20"}
    assert record_baseline(env_of(tracker), build("smoke", long, data=str(corpus))).ok
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    args = [
        "search",
        "--trials",
        "1",
        "--space",
        str(space),
        "--study",
        "killed",
        "--retrain",  # trial 0 is the baseline's own point: trained, not linked to it
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

    res = run_search(
        env_of(tracker, retrain=True), trials=1, space=str(space), study_name="killed", plots=False
    )
    storage = open_storage(None, tracker.store_dir)
    trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
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
