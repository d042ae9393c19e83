"""The registered best checkpoint served by MLflow's own CLI: `mlflow models predict
--env-manager local` on `models:/NAME/VERSION` returns generated text (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import services

pytestmark = pytest.mark.slow


def test_mlflow_models_predict_returns_text(tmp_path, corpus_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    baseline = ["baseline", "--profile", "smoke", "--data", str(corpus_path)]
    subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *baseline, "--tracking-uri", store],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    from orchestrator import tracking as T
    from orchestrator.tracking.models import log_checkpoint_model

    tracker = T.Tracker(store, "char-gpt", create=False)
    run = T.find_baseline(tracker)
    logged = log_checkpoint_model(tracker, run.run_id, register="shakespeare-best")
    assert logged.registry_uri == "models:/shakespeare-best/1"
    request = tmp_path / "input.json"
    request.write_text(
        json.dumps(
            {
                "dataframe_split": {
                    "columns": ["prompt", "temperature", "top_k", "max_new_tokens"],
                    "data": [["ROMEO:", 0.8, 50, 40], ["JULIET:", 0.5, 10, 12]],
                }
            }
        )
    )
    predict = ["models", "predict", "-m", logged.registry_uri, "-i", str(request), "-t", "json"]
    r = subprocess.run(
        [*services.mlflow_executable(), *predict, "--env-manager", "local"],
        cwd=tmp_path,
        env={**env, "MLFLOW_TRACKING_URI": store},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    predictions = json.loads(r.stdout.strip().splitlines()[-1])["predictions"]
    romeo, juliet = (p["text"] for p in predictions)
    assert romeo.startswith("ROMEO:") and len(romeo) == len("ROMEO:") + 40
    assert juliet.startswith("JULIET:") and len(juliet) == len("JULIET:") + 12
    vocab = set(corpus_path.read_text(encoding="utf-8"))
    assert set(romeo + juliet) <= vocab
