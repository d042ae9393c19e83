"""A run's best checkpoint logged as an MLflow Model (a pyfunc generating text, from code) and
registered: a real store, a really trained run, MLflow's own loader."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch
import yaml

from orchestrator.errors import UserError
from orchestrator.tracking.models import log_checkpoint_model


@pytest.fixture
def logged(tracker, baseline_run):
    return log_checkpoint_model(tracker, baseline_run.run_id, register="char-gpt-best")


def test_listed_under_the_run_and_in_the_registry(tracker, baseline_run, logged):
    client, run_id = tracker.client, baseline_run.run_id
    outputs = client.get_run(run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [logged.model_id]
    model = client.get_logged_model(logged.model_id)
    assert model.source_run_id == run_id and model.experiment_id == tracker.experiment_id
    assert str(model.status) in ("READY", "LoggedModelStatus.READY")
    version = client.get_model_version("char-gpt-best", "1")
    assert (logged.name, logged.version) == ("char-gpt-best", 1)
    assert version.run_id == run_id and version.source == f"models:/{logged.model_id}"
    assert logged.registry_uri == "models:/char-gpt-best/1"
    again = log_checkpoint_model(tracker, run_id, register="char-gpt-best")  # a new version
    assert again.version == 2 and again.model_id != logged.model_id
    unregistered = log_checkpoint_model(tracker, run_id)
    assert unregistered.name is None and unregistered.version is None


def test_from_code_with_a_weights_only_checkpoint(
    tracker, baseline_run, logged, tmp_path, monkeypatch
):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=logged.model_uri, dst_path=str(tmp_path / "m")
    )
    mlmodel = yaml.safe_load(open(f"{local}/MLmodel"))  # noqa: SIM115
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # models from code
    assert pyfunc["model_code_path"].endswith("textgen.py")
    files = {
        p.relative_to(local).as_posix() for p in tmp_path.joinpath("m").rglob("*") if p.is_file()
    }
    assert not [f for f in files if f.endswith((".pkl", ".cloudpickle"))]  # nothing pickled
    assert {"textgen.py", "code/model/sample.py", "artifacts/best.pt"} <= files
    assert "code/model/corpora/tinyshakespeare.txt" not in files
    ckpt = torch.load(f"{local}/artifacts/best.pt", weights_only=True)
    assert ckpt["format"] == "sweep-char-gpt/1"
    original = tracker.download(baseline_run.run_id, "checkpoints/best.pt", tmp_path / "orig")
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    assert hashlib.sha256(open(f"{local}/artifacts/best.pt", "rb").read()).hexdigest() == digest  # noqa: SIM115
    # the signature and the input example travel with it
    info = mlflow.models.get_model_info(logged.model_uri)
    assert info.signature.inputs.input_names() == [
        "prompt",
        "temperature",
        "top_k",
        "max_new_tokens",
        "seed",
    ]
    assert info.signature.outputs.input_names() == ["text"]
    assert "input_example.json" in files


def test_loaded_by_mlflow_it_generates_text(tracker, logged, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.uri)
    model = mlflow.pyfunc.load_model(logged.registry_uri)
    out = model.predict(
        pd.DataFrame({"prompt": ["ROMEO:", "KING:"], "max_new_tokens": [25, 5], "seed": [1, 1]})
    )
    assert list(out.columns) == ["text"]
    romeo, king = out["text"]
    assert romeo.startswith("ROMEO:") and len(romeo) == 6 + 25
    assert king.startswith("KING:") and len(king) == 5 + 5
    same = model.predict(pd.DataFrame({"prompt": ["ROMEO:"], "max_new_tokens": [25], "seed": [1]}))
    assert same["text"][0] == romeo  # seeded
    with pytest.raises(Exception, match=r"max_new_tokens must be an integer in \[0, 100000\]"):
        model.predict(pd.DataFrame({"prompt": ["a"], "max_new_tokens": [10**9]}))


def test_a_run_without_a_checkpoint_is_refused(tracker):
    run_id = tracker.create_run("no-checkpoint")
    with pytest.raises(UserError, match=f"run {run_id} has no artifact 'checkpoints/best.pt'"):
        log_checkpoint_model(tracker, run_id, register="nothing")
