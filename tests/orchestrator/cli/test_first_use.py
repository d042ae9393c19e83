"""First use: what a new user sees before and after training (list, version, provenance,
ablation parents that read at a glance, the time estimate)."""

from __future__ import annotations

import re

from clitools import sweep
from smoke_store import smoke_store  # noqa: F401  (fixture)

from orchestrator import tracking as T


def test_list_shows_baselines_and_sweeps_with_ids_and_states(smoke_store):  # noqa: F811
    r = sweep("list", "--tracking-uri", smoke_store.uri)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == [
        "kind",
        "name",
        "run_id",
        "started",
        "state",
        "what",
        "best_val_loss",
    ]
    sweep_line = next(ln for ln in lines if smoke_store.sweep_id in ln)
    base_line = next(ln for ln in lines if smoke_store.baseline_id in ln)
    assert sweep_line.startswith("ablation") and "ablate:dropout" in sweep_line
    assert base_line.startswith("baseline") and "seeds 1,2" in base_line
    assert "complete" in sweep_line and re.search(r"\d\.\d{4}$", sweep_line)


def test_version_names_the_package_version():
    r = sweep("--version")
    assert r.exit_code == 0 and re.match(r"sweep \d+\.\d+\.\d+", r.output), r.output


def test_runs_record_code_versions_and_ablation_parents_read_at_a_glance(smoke_store):  # noqa: F811
    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    child = tracker.children(smoke_store.sweep_id)[0]
    for pkg in ("sweep", "torch", "mlflow", "optuna"):
        assert re.match(r"\d+\.\d+", child.tags[f"sweep.version.{pkg}"]), pkg
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", child.tags["sweep.git_commit"])
    parent = tracker.get_run(smoke_store.sweep_id)
    assert parent.params["ablate.knob"] == "dropout" and parent.params["n_layer"] == "2"
    assert parent.tags["sweep.best_value"] == "0.2" and parent.tags["sweep.values"] == "0.0,0.2"
    assert "best_val_loss" in parent.metrics and "best_delta" in parent.metrics


def test_an_estimate_is_printed_before_training(store, corpus_path):
    r = sweep("baseline", "--profile", "smoke", "--set", "max_steps=10", "--set", "eval_every=5",
              "--data", str(corpus_path), "--tracking-uri", store)  # fmt: skip
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith("estimated time: ") and "per run" in first, r.output
