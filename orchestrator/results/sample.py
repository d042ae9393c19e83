"""Text from a run's best checkpoint (a sweep parent's best child)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import tracking as T
from ..errors import UserError


def sample_run(
    tracker: T.Tracker,
    run_id: str,
    temperature: float,
    top_k: int,
    max_new_tokens: int,
    prompt: str,
    seed: int,
) -> tuple[str, list[str]]:
    from model.sample import (
        CheckpointError,
        PromptError,
        SampleConfig,
        generate_text,
        load_checkpoint,
    )

    cfg = SampleConfig(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens)
    tracker.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="sweep-sample-") as tmp:
        path = tracker.download(run_id, "checkpoints/best.pt", Path(tmp))
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            raise UserError(str(e)) from None
    try:
        return generate_text(ckpt.model, ckpt.tokenizer, cfg, prompt=prompt, seed=seed)
    except PromptError as e:
        raise UserError(str(e)) from None
