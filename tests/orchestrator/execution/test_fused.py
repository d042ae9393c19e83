"""Fused groups in the execution layer: same-shape runs of one command train as one model,
and each member is exactly a run (MLflow run, params, tags, metrics at every eval, samples,
checkpoint), told apart from a solo run only by its `sweep.fused_group` tag; a member that
diverges fails alone; an interrupted group leaves every member KILLED and resume trains
them again. Real commands, a real SQLite store, real signals."""

from __future__ import annotations

import os
import signal

from clitools import baseline_args, env_with_tmp, sweep, sweep_process, wait_for_running

from orchestrator import tracking as T
from orchestrator.tracking import Role, RunState

# fp32 (amp off) with dropout on, so fused and solo agree to float rounding
SHAPE = ["--set", "max_steps=60", "--set", "eval_every=20", "--set", "amp=off"]
SHAPE += ["--set", "dropout=0.1", "--seeds", "3"]
PROVENANCE = {T.TAG_FUSED_GROUP, T.TAG_FUSED_MEMBERS, T.TAG_PID, T.TAG_THREADS}


def children(tracker: T.Tracker, role: str) -> list[T.RunInfo]:
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{role}'")
    return sorted(tracker.children(parent.run_id), key=lambda r: r.name)


def test_a_fused_baseline_is_the_same_runs_as_solo_ones(store, corpus_path):
    base = ["baseline", "--profile", "smoke", "--data", str(corpus_path), "--tracking-uri", store]
    fused = sweep(*base, *SHAPE, "--fuse", "on", "--experiment", "fused")
    assert fused.exit_code == 0, fused.output
    assert "3 runs trained as one model" in fused.output
    solo = sweep(*base, *SHAPE, "--fuse", "off", "--experiment", "solo")
    assert solo.exit_code == 0, solo.output
    assert "trained as one model" not in solo.output
    f_tracker, s_tracker = T.Tracker(store, "fused"), T.Tracker(store, "solo")
    f_runs, s_runs = children(f_tracker, Role.BASELINE), children(s_tracker, Role.BASELINE)
    assert (
        [r.name for r in f_runs]
        == [r.name for r in s_runs]
        == [
            "baseline/seed=1",
            "baseline/seed=2",
            "baseline/seed=3",
        ]
    )
    groups = {r.tags[T.TAG_FUSED_GROUP] for r in f_runs}
    assert len(groups) == 1 and all(r.tags[T.TAG_FUSED_MEMBERS] == "3" for r in f_runs)
    for f, s in zip(f_runs, s_runs, strict=True):
        assert f.state is s.state is RunState.COMPLETE
        assert T.TAG_FUSED_GROUP not in s.tags
        assert f.params == s.params  # every config field and the dataset, as solo
        assert f.tags[T.TAG_CONFIG_HASH] == s.tags[T.TAG_CONFIG_HASH]
        same = {k for k in s.tags if k.startswith("sweep.") and k not in PROVENANCE}
        assert {k: f.tags[k] for k in same} == {k: s.tags[k] for k in same}
        assert set(f.metrics) == set(s.metrics)
        for key in ("val_loss", "train_loss"):
            fh = [(step, v) for step, _, v in f_tracker.metric_history(f.run_id, key)]
            sh = [(step, v) for step, _, v in s_tracker.metric_history(s.run_id, key)]
            assert [st for st, _ in fh] == [st for st, _ in sh] == [20, 40, 60]
            for (_, a), (_, b) in zip(fh, sh, strict=True):
                assert abs(a - b) <= 1e-4, (f.name, key, fh, sh)
        assert abs(f.metrics["best_val_loss"] - s.metrics["best_val_loss"]) <= 1e-4
        f_files, s_files = f_tracker.artifact_sizes(f.run_id), s_tracker.artifact_sizes(s.run_id)
        assert (
            set(f_files)
            == set(s_files)
            >= {
                "config.json",
                "checkpoints/best.pt",
                "samples/step-20.txt",
                "samples/step-60.txt",
            }
        )
    # a member's checkpoint samples like any run's
    r = sweep("sample", "--run", f_runs[0].run_id, "--tracking-uri", store, "--experiment", "fused")
    assert r.exit_code == 0 and len(r.output.strip()) > 20, r.output


def test_a_diverging_member_fails_alone_and_the_others_finish(tracker, baseline_run):
    r = sweep("ablate", "--knob", "lr", "--values", "0.002,1e6", "--fuse", "on",
              "--tracking-uri", tracker.uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    runs = children(tracker, Role.ABLATION)
    assert len({r.tags[T.TAG_FUSED_GROUP] for r in runs}) == 1
    by_value = {}
    for run in runs:
        by_value.setdefault(float(run.tags[T.TAG_VALUE]), []).append(run)
    assert {r.state for r in by_value[1e6]} == {RunState.FAILED}
    for run in by_value[1e6]:
        assert int(run.tags[T.TAG_FAILED_STEP]) >= 1 and "non-finite" in run.tags[T.TAG_REASON]
    assert {r.state for r in by_value[0.002]} == {RunState.COMPLETE}
    assert all("best_val_loss" in r.metrics for r in by_value[0.002])
    print(r.output)
    assert "unstable (1/1 diverged)" in r.output  # counted in the table, not dropped


def test_an_interrupted_group_leaves_every_member_killed_and_resume_trains_them(
    store, corpus_path, tmp_path
):
    tracker = T.Tracker(store, "char-gpt")
    env = env_with_tmp(tmp_path)
    args = baseline_args(store, corpus_path, "--seeds", "3", "--fuse", "on",
                         "--set", "max_steps=400", "--set", "eval_every=5")  # fmt: skip
    proc = sweep_process(args, tmp_path, env)
    wait_for_running(tracker, proc, (Role.BASELINE_SEED,))
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    killed = children(tracker, Role.BASELINE)
    (first,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{Role.BASELINE}'")
    assert first.state is RunState.KILLED
    assert len(killed) == 3, [(r.name, r.state) for r in killed]
    assert len({r.tags[T.TAG_FUSED_GROUP] for r in killed}) == 1
    for run in killed:
        assert run.state is RunState.KILLED and "interrupted" in run.tags[T.TAG_REASON]
        assert "val_loss" in run.metrics  # what it learned before the signal is kept
    assert not list((tmp_path / "tmp").glob("sweep-run-*"))
    # the same command again: the three are trained again, in one new group
    again = sweep_process(args, tmp_path, env)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    parents = tracker.search(f"tags.`{T.TAG_ROLE}` = '{Role.BASELINE}'")
    assert sorted(p.state for p in parents) == [RunState.COMPLETE, RunState.KILLED]
    (parent,) = [p for p in parents if p.state is RunState.COMPLETE]
    done = tracker.children(parent.run_id)
    assert {r.state for r in done} == {RunState.COMPLETE}
    assert sorted(r.name for r in done) == [f"baseline/seed={s}" for s in (1, 2, 3)]
    groups = {r.tags[T.TAG_FUSED_GROUP] for r in done}
    assert len(groups) == 1 and groups != {killed[0].tags[T.TAG_FUSED_GROUP]}
    killed = tracker.children(first.run_id)
    assert {r.state for r in killed} == {RunState.KILLED}  # the killed ones stay as they were
