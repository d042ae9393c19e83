"""What a training run needs before it allocates anything: its parameter count and a lower
bound on its memory, checked against what the device has.

The memory is a lower bound, so a run that fits is never refused: weights, gradients and
AdamW's two moments (16 bytes a parameter, fp32), the per-layer causal-mask buffers, and the
tensors autograd saves for the backward pass of one micro-batch (measured per layer with
`saved_tensors_hooks`; tests/model/test_footprint.py checks the bound against that
measurement), or an eval batch's transients where those are larger. The allocator's slack,
torch itself and the corpus come on top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from model.config import GPTConfig, TrainConfig
from model.errors import ConfigError

GiB = 2**30


def count_params(cfg: GPTConfig) -> int:
    """The parameters of GPT(cfg), counted without building it (the head is tied to wte)."""
    C, b = cfg.n_embed, int(cfg.bias)
    per_layer = 12 * C * C + 2 * C + b * 11 * C  # attention + MLP matrices, 2 LayerNorms
    return cfg.vocab_size * C + cfg.block_size * C + cfg.n_layer * per_layer + C + b * C


@dataclass(frozen=True)
class Footprint:
    """Bytes a training run needs at least, by part."""

    params: int
    weights: int  # parameters + gradients + AdamW's exp_avg and exp_avg_sq, fp32
    buffers: int  # each layer's block_size x block_size causal mask, fp32
    activations: int  # saved for backward (one micro-batch), or an eval batch's transients

    @property
    def total(self) -> int:
        return self.weights + self.buffers + self.activations


def estimate(
    gpt: GPTConfig, train: TrainConfig, device: str = "cpu", amp: bool = False
) -> Footprint:
    """The lower bound for training `gpt` with `train` on `device` (amp: autocast to 16 bits)."""
    P = count_params(gpt)
    C, T, H, L, V = gpt.n_embed, gpt.block_size, gpt.n_head, gpt.n_layer, gpt.vocab_size
    dropout = gpt.dropout > 0
    per_layer = 16 * C  # fp32 elements saved per token and layer, measured: exactly 16 C
    if dropout and device == "cpu":  # the CPU's own dropout path keeps the attention matrix
        per_layer += 2 * C + 3 * H * T
    per_token = L * per_layer + 2 * C + V + (C if dropout else 0)
    micro = train.batch_size // train.grad_accum_steps
    saved = micro * T * per_token * (2 if amp else 4)
    evaluation = train.batch_size * T * max(8 * C, V) * 4  # MLP hidden or the logits, at once
    return Footprint(P, 16 * P, L * T * T * 4, max(saved, evaluation))


def cgroup_limit() -> int | None:
    """Bytes this process's cgroup (v2) may still use, when it has a limit."""
    try:
        rel = Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip()
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text()))
    except (OSError, IndexError, ValueError):
        return None


def available(device: str) -> tuple[int, str]:
    """(bytes free for a run on `device`, where that number comes from)."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free), "free CUDA memory"
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kib = next(
            int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemAvailable:")
        )
        free, what = kib * 1024, "available RAM"
    except (OSError, StopIteration, ValueError, IndexError):
        free, what = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"), "free RAM"
    limit = cgroup_limit()
    if limit is not None and limit < free:
        return limit, "memory left under this process's cgroup limit"
    return free, what


def gib(n: int) -> str:
    """Bytes as a person reads them: GiB, MiB or KiB, one decimal."""
    for unit, size in (("GiB", GiB), ("MiB", 2**20)):
        if n >= size / 10:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"


def check_fits(
    gpt: GPTConfig,
    train: TrainConfig,
    device: str = "cpu",
    amp: bool = False,
    *,
    free: tuple[int, str] | None = None,
) -> Footprint:
    """The footprint, or a ConfigError naming the keys and the numbers when it exceeds what
    `device` has (`free`: (bytes, where from); default: `available(device)`)."""
    fp = estimate(gpt, train, device, amp)
    have, what = free if free is not None else available(device)
    if fp.total <= have:
        return fp
    model_part = fp.weights + fp.buffers
    key = "n_embed" if model_part >= fp.activations else "batch_size"
    raise ConfigError(
        key,
        f"the model is too big for {device}: n_layer={gpt.n_layer}, n_embed={gpt.n_embed}, "
        f"block_size={gpt.block_size}, batch_size={train.batch_size}, "
        f"grad_accum_steps={train.grad_accum_steps} give {fp.params:,} parameters and need at "
        f"least {gib(fp.total)} to train (weights, gradients and AdamW {gib(fp.weights)}, "
        f"attention masks {gib(fp.buffers)}, activations {gib(fp.activations)}), more than "
        f"the {gib(have)} of {what}; lower n_layer, n_embed or block_size"
        + (", or batch_size (or raise grad_accum_steps)" if key == "batch_size" else ""),
    )
