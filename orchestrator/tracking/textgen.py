"""A sweep checkpoint as an MLflow pyfunc model that generates text. MLflow's "models from
code": `tracking/models.py` logs this file's source as the model, and MLflow runs it to build
the model when it loads one, so nothing is pickled; the checkpoint itself is an artifact that
loads with `torch.load(weights_only=True)`. Never imported by the package (it calls
`set_model` when run).

Input: a DataFrame (or records) with a `prompt` column and optional `temperature`, `top_k`,
`max_new_tokens` and `seed` columns (the defaults of `sweep sample` where missing). Output: a
DataFrame with a `text` column, each the prompt and its continuation.
"""

from __future__ import annotations

import math

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULTS = {"temperature": 0.8, "top_k": 50, "max_new_tokens": 200, "seed": 1337}


def given(row, key: str):
    """The row's value of `key`, or its default where the column is missing or empty."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DEFAULTS[key]
    return value


class CharGPTText(PythonModel):
    def load_context(self, context) -> None:
        from model.sample import load_checkpoint

        self.checkpoint = load_checkpoint(context.artifacts["checkpoint"])  # weights_only=True

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from model.config import SampleConfig
        from model.sample import generate_text

        frame = pd.DataFrame(model_input)
        texts = []
        for row in frame.to_dict("records"):
            cfg = SampleConfig(
                temperature=float(given(row, "temperature")),
                top_k=int(given(row, "top_k")),
                max_new_tokens=int(given(row, "max_new_tokens")),
            )
            text, _ = generate_text(
                self.checkpoint.model,
                self.checkpoint.tokenizer,
                cfg,
                prompt=row.get("prompt") or None,
                seed=int(given(row, "seed")),
            )
            texts.append(text)
        return pd.DataFrame({"text": texts})


mlflow.models.set_model(CharGPTText())
