"""Options the training commands share: --threads is recorded with every run, and is not part
of what a run is (its config hash), so a sweep resumes whatever threads it runs on."""

from __future__ import annotations

from clitools import sweep

from orchestrator import tracking as T

SHORT = ["--set", "max_steps=10", "--set", "eval_every=5"]


def test_threads_is_recorded_and_left_out_of_the_config_hash(store, corpus_path):
    data = ["--data", str(corpus_path), "--tracking-uri", store]
    r = sweep("baseline", "--profile", "smoke", *SHORT, "--threads", "1", *data)
    assert r.exit_code == 0, r.output
    tracker = T.Tracker(store, "char-gpt", create=False)
    base = T.find_baseline(tracker)
    assert base.tags["sweep.threads"] == "1" and base.params["threads"] == "1"
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--threads", "2",
              "--tracking-uri", store)  # fmt: skip
    assert r.exit_code == 0, r.output
    (child,) = tracker.children(T.find_sweep(tracker, knob="dropout").run_id)
    assert child.tags["sweep.threads"] == "2" and child.params["threads"] == "2"
    # the same value on one thread is the same run: resume finds it, nothing is trained
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--threads", "1",
              "--tracking-uri", store)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(tracker.children(T.find_sweep(tracker, knob="dropout").run_id)) == 1
    r = sweep("baseline", "--profile", "smoke", "--threads", "-1", *data)
    assert r.exit_code == 2 and "'--threads'" in r.output and "or equal to 0" in r.output
