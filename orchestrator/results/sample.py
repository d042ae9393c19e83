"""Text from a run's best checkpoint (a sweep parent's best child)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import tracking as T
from ..errors import UserError


def checkpoint_run(tracker: T.Tracker, run_id: str) -> tuple[T.RunInfo, str | None]:
    """The run that holds the checkpoint for `run_id`: itself, or for a seeded baseline or a
    sweep parent its best finished child; and a note saying which child was picked."""
    from .best import best_run, has_checkpoint

    run = tracker.get_run(run_id)
    if run.deleted:
        raise UserError(T.deleted_message(run))
    if run.state is T.RunState.REUSED:
        source = T.source_of(tracker, run)
        return (
            source,
            f"{run.name} reused run {source.name} ({source.run_id}): sampling its checkpoint",
        )
    if has_checkpoint(run):
        return run, None
    child = best_run(tracker, run_id)
    return (
        child,
        f"{run.name} is a parent run: sampling its best child {child.name} ({child.run_id})",
    )


def sample_run(
    tracker: T.Tracker,
    run_id: str,
    temperature: float,
    top_k: int,
    max_new_tokens: int,
    prompt: str | None,
    seed: int,
) -> tuple[str, list[str]]:
    """Text from a run's best checkpoint; prompt None: a newline, or the corpus's first
    character when the corpus has no newline."""
    from model.config import check_seed
    from model.sample import (
        CheckpointError,
        PromptError,
        SampleConfig,
        generate_text,
        load_checkpoint,
    )

    # bad settings are refused before anything is downloaded
    cfg = SampleConfig(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens)
    check_seed(seed)
    run_id = checkpoint_run(tracker, run_id)[0].run_id
    with tempfile.TemporaryDirectory(prefix="sweep-sample-") as tmp:
        path = tracker.download(run_id, "checkpoints/best.pt", Path(tmp))
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            raise UserError(str(e)) from None
    try:
        text, notices = generate_text(ckpt.model, ckpt.tokenizer, cfg, prompt=prompt, seed=seed)
    except PromptError as e:
        raise UserError(str(e)) from None
    return text, notices
