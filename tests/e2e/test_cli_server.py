"""The `sweep` workflow of tests/orchestrator/cli/test_cli.py against a real `mlflow server`
(an HTTP tracking URI instead of the embedded SQLite store)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orchestrator import tracking as T
from orchestrator.cli import app

pytestmark = pytest.mark.slow

SMOKE_SET = ["--set", "max_steps=30", "--set", "eval_every=10"]


def sweep(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_the_same_flow_against_a_real_mlflow_server(
    mlflow_server, corpus_path, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # tables of a remote store are written to the current directory
    uri = mlflow_server
    r = sweep(
        "baseline",
        "--profile",
        "smoke",
        *SMOKE_SET,
        "--data",
        str(corpus_path),
        "--tracking-uri",
        uri,
    )
    assert r.exit_code == 0, r.output
    assert "View run" not in r.output  # MLflow's own URL lines are kept out of the progress
    r = sweep("ablate", "--knob", "dropout", "--values", "0.0,0.2", "--tracking-uri", uri)
    assert r.exit_code == 0, r.output
    assert "View run" not in r.output and "View experiment" not in r.output
    tracker = T.Tracker(uri, "char-gpt")
    parent = tracker.search(f"tags.`{T.TAG_ROLE}` = 'ablation'")[0]
    (child,) = tracker.children(parent.run_id)
    assert child.name == "dropout=0.2" and child.status == "FINISHED"
    assert "checkpoints/best.pt" in tracker.list_artifacts(child.run_id, "checkpoints")
    assert {"table.csv", "table.md"} <= set(tracker.list_artifacts(parent.run_id))
    assert len(list((tmp_path / "sweep-tables").glob("ablate-dropout-*.csv"))) == 1
    r = sweep("table", "--tracking-uri", uri, "--format", "csv")
    assert r.exit_code == 0 and r.output.startswith('"knob","value","seeds"')
    r = sweep("sample", "--run", child.run_id, "--tracking-uri", uri, "--max-new-tokens", "40")
    assert r.exit_code == 0 and len(r.output.strip()) >= 20
