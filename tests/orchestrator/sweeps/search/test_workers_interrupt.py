"""Ctrl-C and SIGTERM during `sweep search --workers 2`, with real signals on a real `sweep`
process: every trial ends (Optuna FAIL, MLflow KILLED), then the parent run; exit 130; no
work folder left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from clitools import sweep, sweep_process
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.studies import open_storage
from orchestrator.sweeps.search.context import worker_limit
from orchestrator.tracking import RunState

pytestmark = pytest.mark.skipif(
    worker_limit()[0] < 2, reason=f"--workers 2 is refused here ({worker_limit()[1]})"
)

# Trial 0 is the baseline's own point (20 steps); the others train 100000 steps, so two of them
# are still training when the signal comes. dropout makes every trial's params distinct.
SPACE = "[max_steps]\nvalues = [100000]\n\n[dropout]\nlow = 0.0\nhigh = 0.3\n"


@pytest.fixture
def long_search(store, corpus_path, tmp_path):
    """(tracker, env, args): a recorded 20-step baseline and the args of a 2-worker search."""
    tracker = T.Tracker(store, "char-gpt")
    base = ["--profile", "smoke", "--data", str(corpus_path), "--tracking-uri", store]
    r = sweep("baseline", *base, "--set", "max_steps=20", "--set", "eval_every=5")
    assert r.exit_code == 0, r.output
    space = tmp_path / "long.toml"
    space.write_text(SPACE, encoding="utf-8")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    args = [
        "search",
        "--space",
        str(space),
        "--trials",
        "20",
        "--workers",
        "2",
        "--study",
        "s2",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--seed",
        "0",
        "--tracking-uri",
        store,
    ]
    return tracker, env, args


def two_trials_training(tracker, proc, timeout: float = 240.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        runs = [
            r
            for r in T.running(tracker)
            if r.tags.get(T.TAG_ROLE) == T.Role.SEARCH_TRIAL and "val_loss" in r.metrics
        ]
        if len(runs) >= 2:
            return runs
        time.sleep(0.1)
    raise AssertionError("two trials never trained at once")


def assert_all_ended(tracker, tmp: Path, out: str, code: int, expected: int = 130) -> None:
    assert code == expected, out
    assert "Traceback" not in out, out
    assert T.running(tracker) == [], [(r.name, r.status) for r in T.running(tracker)]
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{T.Role.SEARCH}'")
    assert parent.state is RunState.KILLED
    study = optuna.load_study(study_name="s2", storage=open_storage(None, tracker.store_dir))
    assert [t.number for t in study.trials if t.state == TrialState.RUNNING] == []
    killed = [c for c in tracker.children(parent.run_id) if c.state is RunState.KILLED]
    assert len(killed) >= 2, [
        (c.name, c.state, c.tags.get(T.TAG_REASON)) for c in tracker.children(parent.run_id)
    ] + [out]
    for c in killed:  # ended by their own worker (a reason), Optuna told FAIL
        assert c.tags.get(T.TAG_REASON), c.tags
        assert study.trials[int(c.tags[T.TAG_TRIAL])].state == TrialState.FAIL
    assert not list(tmp.glob("sweep-run-*"))


def test_ctrl_c_ends_both_workers_trials_and_the_parent(long_search, tmp_path):
    tracker, env, args = long_search
    proc = sweep_process(args, tmp_path, env)
    two_trials_training(tracker, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    out, _ = proc.communicate(timeout=120)
    assert_all_ended(tracker, tmp_path / "tmp", out, proc.returncode)


def test_sigterm_to_the_main_process_ends_the_workers_trials_too(long_search, tmp_path):
    tracker, env, args = long_search
    proc = sweep_process(args, tmp_path, env)
    two_trials_training(tracker, proc)
    os.kill(proc.pid, signal.SIGTERM)  # `kill <pid>`: the main process only
    out, _ = proc.communicate(timeout=120)
    assert_all_ended(tracker, tmp_path / "tmp", out, proc.returncode, expected=143)  # 128 + 15


def test_ctrl_c_to_a_search_that_ignores_sigint_itself_ends_it_killed(long_search, tmp_path):
    """A background job of a script starts with SIGINT ignored; Ctrl-C to the script's
    process group still stops the workers. The search was interrupted: KILLED, exit 130,
    never FINISHED/complete with 0 trials done."""
    tracker, env, args = long_search

    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = sweep_process(args, tmp_path, env, preexec_fn=ignore_sigint)
    two_trials_training(tracker, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert_all_ended(tracker, tmp_path / "tmp", out, proc.returncode)
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{T.Role.SEARCH}'")
    assert "interrupted (SIGINT)" in parent.tags[T.TAG_REASON]


def test_workers_that_all_die_fail_the_search_never_complete(long_search, tmp_path):
    """Both workers SIGKILLed (the OOM killer, a lost node): the search is short of its
    trials and says so, exit 1, the parent FAILED; it used to close `complete`, exit 0."""
    tracker, env, args = long_search
    proc = sweep_process(args, tmp_path, env)
    runs = two_trials_training(tracker, proc)
    for pid in {int(r.tags[T.TAG_PID]) for r in runs}:
        os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "error: every worker ended with 1 of 20 trials finished" in out, out
    assert "Traceback" not in out
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{T.Role.SEARCH}'")
    assert parent.state is RunState.FAILED and "every worker ended" in parent.tags[T.TAG_REASON]
    assert T.running(tracker) == []
    killed = [tracker.get_run(r.run_id) for r in runs]
    assert all(
        r.state is RunState.KILLED and "died mid-trial" in r.tags[T.TAG_REASON] for r in killed
    )
