"""The runner never leaves a run RUNNING and never loses what it learned: a closed terminal
(SIGHUP), a SIGKILL (the next command reaps the run and its work folder), a full disk (the run
ends FAILED and resume trains it again); real signals, processes and a tmpfs (as root)."""

from __future__ import annotations

import os
import signal

from clitools import (
    LONG,
    SHORT,
    baseline_args,
    env_with_tmp,
    one_error_line,
    sweep,
    sweep_process,
    tmpfs,
    wait_for_running,
)
from envs import ablation_of
from smoke_store import smoke_store  # noqa: F401  (fixture)

from orchestrator import tracking as T
from orchestrator.tracking import RunState


def test_sighup_ends_the_run_killed_not_running(store, corpus_path, tmp_path):
    tracker = T.Tracker(store, "char-gpt")
    proc = sweep_process(baseline_args(store, corpus_path, *LONG), tmp_path, env_with_tmp(tmp_path))
    run = wait_for_running(tracker, proc, ("baseline",))
    os.kill(proc.pid, signal.SIGHUP)  # a closed terminal, a dropped SSH session
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 129, out  # 128 + SIGHUP, as a shell reports it
    after = tracker.get_run(run.run_id)
    assert after.state is RunState.KILLED and "SIGHUP" in after.tags[T.TAG_REASON]
    assert not list((tmp_path / "tmp").glob("sweep-run-*"))  # its work folder is gone too


def test_a_sigkilled_baseline_and_its_work_folder_are_cleaned_by_the_next_command(
    store, corpus_path, tmp_path
):
    tracker = T.Tracker(store, "char-gpt")
    env = env_with_tmp(tmp_path)
    proc = sweep_process(baseline_args(store, corpus_path, *LONG), tmp_path, env)
    run = wait_for_running(tracker, proc, ("baseline",))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert tracker.get_run(run.run_id).state is RunState.RUNNING  # what a SIGKILL leaves
    left = list((tmp_path / "tmp").glob(f"sweep-run-{proc.pid}-*"))
    assert left and (left[0] / "ckpt").is_dir()  # with its checkpoint in it
    nxt = sweep_process(baseline_args(store, corpus_path, *SHORT), tmp_path, env)
    out, _ = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, out
    after = tracker.get_run(run.run_id)
    assert after.state is RunState.KILLED and f"process {proc.pid}" in after.tags[T.TAG_REASON]
    assert f"note: baseline ({run.run_id})" in out
    assert not list((tmp_path / "tmp").glob(f"sweep-run-{proc.pid}-*"))


def test_a_full_disk_fails_the_run_and_resume_trains_it_again(tracker, baseline_run, tmp_path):
    store_dir = T.sqlite_path(tracker.uri).parent
    runs_dir = store_dir / "mlruns" / "char-gpt"
    with tmpfs(runs_dir, "200k"):  # the smoke checkpoint alone is about 430 kB
        r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", tracker.uri)
        assert r.exit_code == 1, r.output
        line = one_error_line(r)
        assert tracker.uri in line and "could not store the run's artifacts" in line
        (child,) = tracker.children(ablation_of(tracker, "dropout", baseline_run.run_id).run_id)
        assert child.state is RunState.FAILED, child.tags  # never FINISHED without its files
        assert "artifacts" in child.tags[T.TAG_REASON]
    # space again (the tmpfs is gone): the same command trains it again and keeps it
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", tracker.uri)
    assert r.exit_code == 0, r.output
    parent = ablation_of(tracker, "dropout", baseline_run.run_id)
    done = [c for c in tracker.children(parent.run_id) if c.state is RunState.COMPLETE]
    assert len(done) == 1 and "checkpoints/best.pt" in tracker.artifact_sizes(done[0].run_id)
    assert sweep("sample", "--run", done[0].run_id, "--tracking-uri", tracker.uri).exit_code == 0
