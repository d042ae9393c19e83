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


PRESETS = {  # the course notes' sampling settings (lesson 6): (temperature, top_k)
    "conservative": (0.7, 50),  # coherent, fewer mistakes
    "balanced": (0.9, 100),
    "spicier": (1.1, 0),  # creative: top_k off
}
DEFAULT_TEMPERATURE, DEFAULT_TOP_K = 0.8, 50


def settings(preset: str | None, temperature: float | None, top_k: int | None) -> tuple[float, int]:
    """(temperature, top_k): a preset's, overridden by what is given explicitly."""
    if preset is not None and preset not in PRESETS:
        raise UserError(f"--preset {preset}: choose one of {', '.join(PRESETS)}")
    t, k = PRESETS[preset] if preset else (DEFAULT_TEMPERATURE, DEFAULT_TOP_K)
    return (t if temperature is None else temperature), (k if top_k is None else top_k)


def check_sample(temperature: float, top_k: int, max_new_tokens: int, seed: int) -> None:
    """Refuse bad sampling settings (one line) before any store is read or file loaded."""
    from model.config import check_seed
    from model.sample import SampleConfig

    SampleConfig(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens)
    check_seed(seed)


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
    check_sample(temperature, top_k, max_new_tokens, seed)  # before anything is downloaded
    run_id = checkpoint_run(tracker, run_id)[0].run_id
    with tempfile.TemporaryDirectory(prefix="sweep-sample-") as tmp:
        path = tracker.download(run_id, "checkpoints/best.pt", Path(tmp))
        return sample_file(path, temperature, top_k, max_new_tokens, prompt, seed)


def sample_file(
    path: Path,
    temperature: float,
    top_k: int,
    max_new_tokens: int,
    prompt: str | None,
    seed: int,
) -> tuple[str, list[str]]:
    """Text from a checkpoint file (`checkpoints/best.pt` of a run, or a copy of it)."""
    from model.config import check_seed
    from model.sample import (
        CheckpointError,
        PromptError,
        SampleConfig,
        generate_text,
        load_checkpoint,
    )

    cfg = SampleConfig(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens)
    check_seed(seed)
    if not Path(path).is_file():
        raise UserError(f"no checkpoint file at {path}")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    try:
        text, notices = generate_text(ckpt.model, ckpt.tokenizer, cfg, prompt=prompt, seed=seed)
    except PromptError as e:
        raise UserError(str(e)) from None
    return text, notices
