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
        "table",
    ]
    sweep_line = next(ln for ln in lines if smoke_store.sweep_id in ln)
    base_line = next(ln for ln in lines if smoke_store.baseline_id in ln)
    assert sweep_line.startswith("ablation") and "ablate:dropout" in sweep_line
    assert base_line.startswith("baseline") and "seeds 1,2" in base_line
    assert "complete" in sweep_line and re.search(r"\d\.\d{4}\s+seeds 1,2$", sweep_line)


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


def test_sample_from_a_parent_id_picks_its_best_child_and_best_samples_the_best_run(smoke_store):  # noqa: F811
    uri = ("--tracking-uri", smoke_store.uri, "--max-new-tokens", "20")
    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    for parent_id in (smoke_store.baseline_id, smoke_store.sweep_id):
        r = sweep("sample", "--run", parent_id, *uri)
        assert r.exit_code == 0, r.output
        parent = tracker.get_run(parent_id)
        note = next(ln for ln in r.output.splitlines() if ln.startswith("note: "))
        assert f"{parent.name} is a parent run: sampling its best child" in note
        child_id = note.rsplit("(", 1)[1].rstrip(")")
        assert tracker.get_run(child_id).tags[T.PARENT_TAG] == parent_id
        assert len(r.output.splitlines()[-1]) > 0
    r = sweep("sample", "--best", *uri)
    assert r.exit_code == 0, r.output
    for args in ((), ("--best", "--run", smoke_store.baseline_id)):
        r = sweep("sample", *args, *uri)
        assert r.exit_code == 2 and "give --run RUN_ID, --best or --checkpoint FILE" in r.output


def test_a_corpus_without_a_newline_trains_and_samples(store, corpus_path, tmp_path):
    flat = tmp_path / "flat.txt"
    flat.write_text(corpus_path.read_text(encoding="utf-8")[:20000].replace("\n", " "))
    assert "\n" not in flat.read_text()
    r = sweep("baseline", "--profile", "smoke", "--set", "max_steps=10", "--set", "eval_every=5",
              "--data", str(flat), "--tracking-uri", store)  # fmt: skip
    assert r.exit_code == 0, r.output
    tracker = T.Tracker(store, "char-gpt", create=False)
    (run,) = [r for r in tracker.search() if r.name == "baseline"]
    assert run.status == "FINISHED" and run.tags[T.TAG_STATE] == "complete"
    assert tracker.list_artifacts(run.run_id, "samples") == [
        "samples/step-05.txt",
        "samples/step-10.txt",
    ]
    r = sweep("sample", "--run", run.run_id, "--max-new-tokens", "20", "--tracking-uri", store)
    assert r.exit_code == 0, r.output
