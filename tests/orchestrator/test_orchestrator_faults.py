"""Nothing lost, nothing left RUNNING: what a closed terminal, a SIGKILL, a full disk, a
read-only or locked store and two processes at once do to a sweep, with real signals, real
processes and real filesystems (a tmpfs, as root), on real MLflow stores."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from clitools import one_error_line, sweep, sweep_process, wait_for_running
from smoke_store import smoke_store  # noqa: F401  (fixture)

from orchestrator import tracking as T
from orchestrator.tracking import RunState

LONG = ["--set", "max_steps=5000", "--set", "eval_every=5"]
SHORT = ["--set", "max_steps=20", "--set", "eval_every=10"]


def env_with_tmp(tmp_path: Path) -> dict:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}


def baseline_args(store: str, corpus: Path, *more: str) -> list[str]:
    return ["baseline", "--profile", "smoke", "--data", str(corpus), "--tracking-uri", store, *more]


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
        ).returncode
    ):
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_sighup_ends_the_run_killed_not_running(store, corpus_path, tmp_path):
    tracker = T.Tracker(store, "char-gpt")
    proc = sweep_process(baseline_args(store, corpus_path, *LONG), tmp_path, env_with_tmp(tmp_path))
    run = wait_for_running(tracker, proc, ("baseline",))
    os.kill(proc.pid, signal.SIGHUP)  # a closed terminal, a dropped SSH session
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
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
        (child,) = tracker.children(T.find_ablation(tracker, "dropout", baseline_run.run_id).run_id)
        assert child.state is RunState.FAILED, child.tags  # never FINISHED without its files
        assert "artifacts" in child.tags[T.TAG_REASON]
    # space again (the tmpfs is gone): the same command trains it again and keeps it
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", tracker.uri)
    assert r.exit_code == 0, r.output
    parent = T.find_ablation(tracker, "dropout", baseline_run.run_id)
    done = [c for c in tracker.children(parent.run_id) if c.state is RunState.COMPLETE]
    assert len(done) == 1 and "checkpoints/best.pt" in tracker.artifact_sizes(done[0].run_id)
    assert sweep("sample", "--run", done[0].run_id, "--tracking-uri", tracker.uri).exit_code == 0


def test_a_locked_store_is_one_line_exit_1_and_loses_nothing(tracker, baseline_run):
    db = T.sqlite_path(tracker.uri)
    before = [(r.run_id, r.status) for r in tracker.search()]
    lock = sqlite3.connect(db, timeout=1)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", tracker.uri)
    finally:
        lock.rollback()
        lock.close()
    assert r.exit_code == 1, r.output
    line = one_error_line(r)
    assert str(db) in line and "locked" in line
    assert len(r.output.strip().splitlines()) <= 3, r.output  # not 90-350 lines of traceback
    assert [(r.run_id, r.status) for r in tracker.search()] == before


def test_a_read_only_store_is_one_line_exit_1(tracker, baseline_run, tmp_path):
    src = T.sqlite_path(tracker.uri).parent
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(src), str(ro)]).returncode:
        pytest.skip("needs root to bind-mount the store read-only (CI runs as root)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        uri = f"sqlite:///{ro / 'mlflow.db'}"
        before = [(r.run_id, r.status) for r in tracker.search()]
        r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--tracking-uri", uri)
        assert r.exit_code == 1, r.output
        line = one_error_line(r)
        assert str(ro / "mlflow.db") in line and "readonly" in line, line
        assert len(r.output.strip().splitlines()) <= 3, r.output
        assert [(x.run_id, x.status) for x in tracker.search()] == before
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_two_ablations_at_once_train_each_value_and_seed_once(store, corpus_path, tmp_path):
    tracker = T.Tracker(store, "char-gpt")
    r = sweep(*baseline_args(store, corpus_path, *SHORT))
    assert r.exit_code == 0, r.output
    env = env_with_tmp(tmp_path)
    args = ["ablate", "--knob", "dropout", "--values", "0.1,0.2", "--tracking-uri", store]
    procs = [sweep_process(args, tmp_path, env) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    parents = tracker.search(f"tags.`{T.TAG_ROLE}` = 'ablation'")
    children = [c for p in parents for c in tracker.children(p.run_id)]
    hashes = [c.tags[T.TAG_CONFIG_HASH] for c in children if c.state is RunState.COMPLETE]
    assert len(hashes) == 2 and len(set(hashes)) == 2, [c.name for c in children]
    assert not T.running(tracker)


def test_bad_input_is_refused_before_anything_is_recorded(store, corpus_path, tmp_path):
    cases = [
        (["--set", "seed=1e30"], "seed must be an integer in [0, 4294967295]"),
        (["--set", "save_best=foo.pt"], "save_best cannot be set"),
        (["--experiment", "x" * 300], "--experiment must be 1 to 200 characters"),
        (["--seeds", "2", "--set", "block_size=2000000"], "block_size"),
    ]
    for extra, message in cases:
        r = sweep(*baseline_args(store, corpus_path, *SHORT, *extra))
        assert r.exit_code == 2, (extra, r.output)
        assert message in one_error_line(r), (extra, r.output)
    db = T.sqlite_path(store)
    assert not db.exists() or T.Tracker(store, "char-gpt").search() == []


def test_what_trains_but_not_as_asked_is_a_warning(store, corpus_path):
    r = sweep(*baseline_args(store, corpus_path, "--set", "max_steps=8", "--set", "eval_every=4"))
    assert r.exit_code == 0 and "warning: warmup_steps (10) is more than max_steps (8)" in r.output
    r = sweep("ablate", "--knob", "n_embed", "--values", "66", "--tracking-uri", store)
    assert r.exit_code == 0, r.output
    assert (
        "warning: n_embed=66: n_embed=66 is not divisible by n_head=2" not in r.output
    )  # 66 % 2 == 0
    r = sweep("ablate", "--knob", "n_embed", "--values", "65", "--tracking-uri", store)
    assert "n_embed=65 is not divisible by n_head=2: n_head is 1" in r.output, r.output


def test_a_failed_ablate_leaves_no_empty_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for args in (["ablate", "--knob", "dropout"], ["search"], ["confirm"]):
        r = sweep(*args)
        assert r.exit_code == 2 and "no MLflow store" in one_error_line(r), r.output
    assert list(tmp_path.iterdir()) == []


def test_sweep_ui_warns_off_localhost_and_dies_with_its_server(smoke_store, tmp_path):  # noqa: F811
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sweep_process(
        ["ui", "--tracking-uri", smoke_store.uri, "--port", str(port), "--host", "0.0.0.0"],
        tmp_path,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read())
    os.kill(proc.pid, signal.SIGKILL)  # sweep ui dies hard: its server must not live on
    proc.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the MLflow server still listens on {port} after sweep ui died")
    out = proc.stdout.read()
    assert "warning: --host 0.0.0.0 serves the MLflow UI and its API without authentication" in out
