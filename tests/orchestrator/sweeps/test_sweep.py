"""The Sweep: two commands on one sweep train each (config, seed) once; bad input is refused
before anything is recorded; what trains but not as asked is a warning; a command that
cannot start leaves no empty store."""

from __future__ import annotations

from clitools import (
    SHORT,
    baseline_args,
    env_with_tmp,
    one_error_line,
    sweep,
    sweep_process,
)
from smoke_store import smoke_store  # noqa: F401  (fixture)

from orchestrator import tracking as T
from orchestrator.tracking import RunState


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
