"""Text generation (temperature, top_k) and checkpoint loading."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from model.config import SampleConfig, check_seed
from model.data import CharTokenizer
from model.errors import ConfigError
from model.gpt import GPT, GPTConfig

CHECKPOINT_FORMAT = "sweep-char-gpt/1"


class CheckpointError(Exception):
    """The file is not a checkpoint this tool wrote."""


class PromptError(ValueError):
    """The prompt has characters the tokenizer does not know."""


@dataclass
class LoadedCheckpoint:
    model: GPT
    tokenizer: CharTokenizer
    meta: dict  # the checkpoint dict minus "model"


def load_checkpoint(path, map_location="cpu") -> LoadedCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"not a sweep checkpoint: {path} (no such file)")
    try:
        with warnings.catch_warnings():  # foreign pickles warn about their protocol
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any unpickling failure means: not ours
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"not a sweep checkpoint: {path} ({first})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"not a sweep checkpoint: {path} (format {got!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    try:
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        tokenizer = CharTokenizer.from_dict(ckpt["tokenizer"])
    except (KeyError, TypeError, RuntimeError, ConfigError) as e:
        raise CheckpointError(f"not a sweep checkpoint: {path} (damaged: {e})") from e
    model.to(map_location).eval()
    meta = {k: v for k, v in ckpt.items() if k != "model"}
    return LoadedCheckpoint(model, tokenizer, meta)


def clamp_top_k(top_k: int, vocab_size: int) -> tuple[int, str | None]:
    """top_k above the vocabulary is clamped with a notice; 0 stays 0 (off)."""
    if top_k > vocab_size:
        return (
            vocab_size,
            f"top_k {top_k} is above the vocabulary size {vocab_size}; using {vocab_size}",
        )
    return top_k, None


def default_prompt(tokenizer: CharTokenizer) -> str:
    return "\n" if not tokenizer.unknown("\n") else tokenizer.decode([0])


def generate_text(
    model: GPT,
    tokenizer: CharTokenizer,
    cfg: SampleConfig,
    *,
    prompt: str | None = None,
    seed: int = 1337,
    device="cpu",
) -> tuple[str, list[str]]:
    """Return (prompt + continuation, notices). Prompt None: a newline, or, for a corpus
    without newlines, its first vocabulary character, so every corpus can be sampled."""
    check_seed(seed)
    if prompt is None:
        prompt = default_prompt(tokenizer)
    bad = tokenizer.unknown(prompt)
    if bad:
        raise PromptError(
            "prompt has characters outside the vocabulary: " + ", ".join(repr(c) for c in bad)
        )
    if not prompt:
        raise PromptError("prompt must not be empty")
    notices = []
    top_k, notice = clamp_top_k(cfg.top_k, tokenizer.vocab_size)
    if notice:
        notices.append(notice)
    idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = model.generate(idx, cfg.max_new_tokens, cfg.temperature, top_k or None, generator=gen)
    model.train(was_training)
    return prompt + tokenizer.decode(out[0, idx.size(1) :]), notices
