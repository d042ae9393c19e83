"""The configurations of the ML core as frozen dataclasses, validated in __post_init__.

Standard library only (no torch), so the orchestrator can read, build and compare configs
(`sweep table`, `sweep report`) without importing torch. Messages name the key as the user
types it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from model.errors import ConfigError

# Stated bounds, checked before anything is allocated: far above any model this tool trains,
# they turn a typo (n_layer=99999999999999999999) into one line naming the range. Whether a
# size within them fits the device is footprint.check_fits's question (exact integer
# arithmetic, before torch sees a shape).
MAX_SEED = 2**32 - 1  # what every random generator here takes
MAX_VOCAB = 0x110000  # a character-level vocabulary: at most every Unicode code point
MAX_BLOCK = 2**24  # a context longer than any corpus split here: refused by the split check
MAX_LAYERS = 1024
MAX_EMBED = 2**16  # n_head divides n_embed, so it is bounded too
MAX_STEPS = 10**9  # max_steps, warmup_steps, eval_every
MAX_BATCH = 2**20  # batch_size, grad_accum_steps
MAX_EVAL_ITERS = 10**6
MAX_NEW_TOKENS = 100_000  # characters one sample may generate (about 100 KB of text)
INT_BOUNDS = {
    "vocab_size": (1, MAX_VOCAB),
    "block_size": (1, MAX_BLOCK),
    "n_layer": (1, MAX_LAYERS),
    "n_head": (1, MAX_EMBED),
    "n_embed": (1, MAX_EMBED),
    "max_steps": (1, MAX_STEPS),
    "batch_size": (1, MAX_BATCH),
    "grad_accum_steps": (1, MAX_BATCH),
    "eval_every": (1, MAX_STEPS),
    "eval_iters": (1, MAX_EVAL_ITERS),
    "warmup_steps": (0, MAX_STEPS),
    "seed": (0, MAX_SEED),
    "top_k": (0, MAX_VOCAB),
    "max_new_tokens": (0, MAX_NEW_TOKENS),
}


def check_int(cfg, *names: str) -> None:
    """Each of `names` is an int (not a bool) within its INT_BOUNDS."""
    for name in names:
        v = getattr(cfg, name)
        low, high = INT_BOUNDS[name]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ConfigError(name, f"{name} must be an integer in [{low}, {high}] (got {v!r})")


def check_seed(seed, key: str = "seed") -> int:
    """A seed every random generator here takes: an int in [0, MAX_SEED]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(key, f"{key} must be an integer in [0, {MAX_SEED}] (got {seed!r})")
    return seed


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embed: int = 256
    dropout: float = 0.1
    bias: bool = True

    def __post_init__(self):
        check_int(self, "vocab_size", "block_size", "n_layer", "n_head", "n_embed")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
            raise ConfigError("dropout", f"dropout must be in [0, 1) (got {d!r})")
        if self.n_embed % self.n_head:
            raise ConfigError(
                "n_embed",
                f"n_embed ({self.n_embed}) must be divisible by n_head ({self.n_head})",
            )
        if not isinstance(self.bias, bool):
            raise ConfigError("bias", f"bias must be true or false (got {self.bias!r})")


SCHEDULES = ("constant", "cosine")
AMPS = ("auto", "off", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 64
    grad_accum_steps: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01  # torch AdamW default, as the notes use it
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0  # 0 = off
    warmup_steps: int = 200
    schedule: str = "constant"  # "constant" | "cosine"
    eval_every: int = 200  # the notes' val_every
    eval_iters: int = 20
    amp: str = "auto"  # "auto" | "off" | "bf16" | "fp16"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "mps"
    seed: int = 1  # seeded runs are named seed=1, seed=2, ... (DESIGN.md)
    threads: int = 0  # CPU threads for torch; 0 = auto (resolve_threads)
    save_best: str = "best.pt"  # file name of the best checkpoint inside out_dir

    def __post_init__(self):
        check_int(
            self,
            "max_steps",
            "batch_size",
            "grad_accum_steps",
            "eval_every",
            "eval_iters",
            "warmup_steps",
            "seed",
        )
        if not _is_int(self.threads) or self.threads < 0:
            raise ConfigError(
                "threads", f"threads must be an integer >= 0, 0 = auto (got {self.threads!r})"
            )
        if not _is_num(self.lr) or self.lr <= 0:
            raise ConfigError("lr", f"lr must be a number > 0 (got {self.lr!r})")
        if not _is_num(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(
                "min_lr_ratio", f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio!r})"
            )
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(
                "weight_decay", f"weight_decay must be >= 0 (got {self.weight_decay!r})"
            )
        for k in ("beta1", "beta2"):
            v = getattr(self, k)
            if not _is_num(v) or not 0 <= v < 1:
                raise ConfigError(k, f"{k} must be in [0, 1) (got {v!r})")
        if not _is_num(self.grad_clip) or self.grad_clip < 0:
            raise ConfigError(
                "grad_clip", f"grad_clip must be >= 0, 0 = off (got {self.grad_clip!r})"
            )
        for k, allowed in (("schedule", SCHEDULES), ("amp", AMPS), ("device", DEVICES)):
            v = getattr(self, k)
            if v not in allowed:
                raise ConfigError(k, f"{k} must be one of {', '.join(allowed)} (got {v!r})")
        if (
            not isinstance(self.save_best, str)
            or not self.save_best
            or Path(self.save_best).name != self.save_best
        ):
            raise ConfigError(
                "save_best", f"save_best must be a plain file name (got {self.save_best!r})"
            )
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(
                "grad_accum_steps",
                f"batch_size ({self.batch_size}) must be divisible by "
                f"grad_accum_steps ({self.grad_accum_steps})",
            )


@dataclass(frozen=True)
class SampleConfig:
    temperature: float = 0.8  # > 0
    top_k: int = 50  # >= 0, 0 = off; above the vocabulary: clamped (sample.clamp_top_k)
    max_new_tokens: int = 200  # in [0, MAX_NEW_TOKENS]

    def __post_init__(self):
        t = self.temperature
        if (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or not (math.isfinite(t) and t > 0)
        ):
            raise ConfigError("temperature", f"temperature must be a number > 0 (got {t!r})")
        check_int(self, "top_k", "max_new_tokens")
