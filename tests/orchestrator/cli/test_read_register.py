"""`--register NAME` on best and on the training commands: the best run's checkpoint as a
registered MLflow Model (real store, real registry, MLflow's own loader)."""

from __future__ import annotations

import re

from clitools import sweep

from orchestrator import tracking as T


def registered(tracker, name: str):
    versions = tracker.client.search_model_versions(f"name = '{name}'")
    return sorted(versions, key=lambda v: int(v.version))


def test_best_register_logs_and_registers_the_best_checkpoint(store, corpus_path, monkeypatch):
    import mlflow
    import pandas as pd

    base = ["--profile", "smoke", "--data", str(corpus_path), "--tracking-uri", store]
    tiny = ["--set", "max_steps=4", "--set", "eval_every=2"]
    r = sweep("baseline", *base, *tiny, "--register", "tiny-gpt")
    assert r.exit_code == 0, r.output
    tracker = T.Tracker(store, "char-gpt", create=False)
    (v1,) = registered(tracker, "tiny-gpt")
    (run,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{T.Role.BASELINE}'")
    assert v1.run_id == run.run_id
    assert f"registered baseline ({run.run_id}) as models:/tiny-gpt/1" in r.output

    r = sweep("best", "--tracking-uri", store, "--register", "tiny-gpt")
    assert r.exit_code == 0, r.output
    assert re.search(r"registered baseline \(\w+\) as models:/tiny-gpt/2 ", r.output), r.output
    assert [int(v.version) for v in registered(tracker, "tiny-gpt")] == [1, 2]
    # through the environment: mlflow.set_tracking_uri would stay set for later tests
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    model = mlflow.pyfunc.load_model("models:/tiny-gpt/2")
    out = model.predict(pd.DataFrame({"prompt": ["ROMEO:"], "max_new_tokens": [5], "seed": [1]}))
    assert out["text"][0].startswith("ROMEO:") and len(out["text"][0]) == len("ROMEO:") + 5
