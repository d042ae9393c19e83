"""A run's best checkpoint as an MLflow Model: a pyfunc that generates text (models from code,
`textgen.py`), with a signature and an input example, listed under the run's logged models
and registered under a name (`sweep best --register NAME`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, first_line
from .store import Tracker

URI_ENV = "MLFLOW_TRACKING_URI"
CHECKPOINT = "checkpoints/best.pt"
MODEL_NAME = "char-gpt"  # the logged model's name within its run
EXAMPLE = {"prompt": ["ROMEO:"], "temperature": [0.8], "top_k": [50], "max_new_tokens": [40]}


@dataclass(frozen=True)
class RegisteredModel:
    model_id: str  # the LoggedModel (the run's "Logged models")
    model_uri: str  # models:/<model_id>
    name: str | None  # the registered model, when registered
    version: int | None

    @property
    def registry_uri(self) -> str | None:
        return None if self.name is None else f"models:/{self.name}/{self.version}"


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "prompt"),
                ColSpec("double", "temperature", required=False),
                ColSpec("long", "top_k", required=False),
                ColSpec("long", "max_new_tokens", required=False),
                ColSpec("long", "seed", required=False),
            ]
        ),
        outputs=Schema([ColSpec("string", "text")]),
    )


def model_code(into: Path) -> tuple[Path, Path]:
    """(the models-from-code file, a folder holding the `model` package's Python files): what
    MLflow copies into the model, so that it loads where sweep is not installed (with torch)."""
    import model

    here = Path(__file__).resolve()
    package = Path(model.__file__).resolve().parent
    code = into / "code" / "model"
    code.mkdir(parents=True)
    for source in package.glob("*.py"):  # not corpora/: 1.1 MB the sampler never reads
        shutil.copy(source, code / source.name)
    return here.with_name("textgen.py"), code


def log_checkpoint_model(
    tracker: Tracker, run_id: str, register: str | None = None
) -> RegisteredModel:
    """Log run `run_id`'s best checkpoint as an MLflow Model (a pyfunc generating text) under
    that run, and register it as `register` (a new version each time) when given. The
    checkpoint is checked to be a sweep checkpoint first."""
    import mlflow
    import pandas as pd
    import torch
    from mlflow.exceptions import MlflowException

    from model.sample import CheckpointError, load_checkpoint

    with tempfile.TemporaryDirectory(prefix="sweep-model-") as tmp:
        ckpt = tracker.download(run_id, CHECKPOINT, Path(tmp) / "ckpt")
        try:
            load_checkpoint(ckpt)  # weights_only=True: refused if it is not ours
        except CheckpointError as e:
            raise UserError(str(e)) from None
        code_file, code_dir = model_code(Path(tmp))
        before = os.environ.get(URI_ENV)
        os.environ[URI_ENV] = tracker.connect_uri  # what Model.log's own clients connect to
        try:
            # made here, in the run's experiment (Model.log alone would make it in the
            # process's active experiment, MLflow's Default, with its artifacts in ./mlruns/0)
            logged = tracker.client.create_logged_model(
                tracker.experiment_id, name=MODEL_NAME, source_run_id=run_id
            )
            info = mlflow.models.Model.log(
                artifact_path=None,  # deprecated in favour of name=, but still positional
                name=MODEL_NAME,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                model_id=logged.model_id,
                python_model=str(code_file),
                artifacts={"checkpoint": str(ckpt)},
                code_paths=[str(code_dir)],
                signature=signature(),
                input_example=pd.DataFrame(EXAMPLE),
                registered_model_name=register,
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__}"],
            )
        except MlflowException as e:
            first = first_line(e) or type(e).__name__
            raise UserError(f"cannot log run {run_id}'s checkpoint as a model: {first}") from None
        finally:
            if before is None:
                del os.environ[URI_ENV]
            else:
                os.environ[URI_ENV] = before
    version = info.registered_model_version
    return RegisteredModel(
        info.model_id,
        f"models:/{info.model_id}",
        register,
        None if version is None else int(version),
    )
