"""Which runs may train as one fused group, and in groups of how many.

`fuse_key` says which specs can share a group (the caller adds the corpus); `plan_groups`
splits n same-key specs into group sizes from the memory the device has and, under
`fuse="auto"`, only where fusing pays on this device and shape:

- CPU: fuse while a member's step is at most `CPU_FUSE_MAX_GFLOP` (benchmarks/fused.py on
  this project's 2-core AVX512-BF16 CPU, bf16, groups of 2-8 against solo runs: 1.5-2.9x at
  the smoke shape, 0.35 GFLOP a step, where a step is mostly per-op overhead; 1.2-1.4x at
  2.7 GFLOP; 1.06-1.13x at 11.5 GFLOP, within the machine's noise; 0.57-0.91x at the
  CPU-safe shape, 169 GFLOP, where the CPU is busy with the matmuls already);
- CUDA: fuse while a member's step is at most `CUDA_FUSE_MAX_TFLOP` (the GPU sits mostly
  idle under one small model: 12% of its matmul rate at nanoGPT's shakespeare-char shape);
- elsewhere (mps), and with fp16 (no per-member loss scaling), never.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from model.config import GPTConfig, TrainConfig

# fields a member may set for itself; everything else of both configs is the group's shape
PER_RUN = frozenset(
    {"seed", "dropout", "lr", "min_lr_ratio", "weight_decay", "beta1", "beta2",
     "grad_clip", "warmup_steps", "schedule", "save_best"}
)  # fmt: skip
FUSE_CHOICES = ("auto", "on", "off")
CPU_FUSE_MAX_GFLOP = 5.0  # per member step; see benchmarks/fused.py and the README
CUDA_FUSE_MAX_TFLOP = 4.0
MEMORY_SHARE = {"cuda": 0.8, "cpu": 0.5}  # of the free memory a group may plan to use


def fuse_key(gpt_config: GPTConfig, train_config: TrainConfig) -> tuple:
    """Specs with equal keys (and the same corpus) can train as one group: every field of
    both configs but seed, dropout, lr, min_lr_ratio, weight_decay, beta1, beta2, grad_clip,
    warmup_steps, schedule (and save_best, a file name inside each run's own folder)."""
    return tuple(
        (f.name, getattr(cfg, f.name))
        for cfg in (gpt_config, train_config)
        for f in dataclasses.fields(cfg)
        if f.name not in PER_RUN
    )


def n_params(g: GPTConfig) -> int:
    """Trainable parameters of a GPT of this shape (the tied embedding once)."""
    C, L, b = g.n_embed, g.n_layer, int(g.bias)
    per_layer = 12 * C * C + b * 9 * C + (2 + 2 * b) * C  # attn, mlp, two LayerNorms
    return g.vocab_size * C + g.block_size * C + L * per_layer + (1 + b) * C


def step_flops(g: GPTConfig, t: TrainConfig) -> float:
    """Training FLOPs of one member step (nanoGPT's estimate: 6N + 12 L C T per token)."""
    per_token = (
        6 * (n_params(g) - g.block_size * g.n_embed) + 12 * g.n_layer * g.n_embed * g.block_size
    )
    return per_token * t.batch_size * g.block_size


def member_bytes(g: GPTConfig, t: TrainConfig) -> int:
    """Estimated memory of one member: fp32 weights, gradient and AdamW moments (16 bytes a
    parameter, 2 more for the bf16 copy), and the activations a micro-batch keeps for the
    backward pass (fp32: per token and layer ~24 C values and 3 attention rows when dropout
    is on, logits 3 V), times 1.5 for temporaries."""
    tokens = t.batch_size // t.grad_accum_steps * g.block_size
    per_token = g.n_layer * (24 * g.n_embed + 3 * g.n_head * g.block_size) + 3 * g.vocab_size
    return int(1.5 * (18 * n_params(g) + 4 * tokens * per_token))


def free_bytes(device: str) -> int:
    """Free CUDA memory, or the RAM Linux says is available (MemAvailable)."""
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30  # unknown: assume a small machine


def members_that_fit(device: str, g: GPTConfig, t: TrainConfig, free: int | None = None) -> int:
    free = free_bytes(device) if free is None else free
    return max(1, int(free * MEMORY_SHARE.get(device, 0.5)) // member_bytes(g, t))


def fusion_pays(device: str, g: GPTConfig, t: TrainConfig, amp_dtype=None) -> bool:
    if device == "cuda":
        return step_flops(g, t) <= CUDA_FUSE_MAX_TFLOP * 1e12
    if device == "cpu":
        return step_flops(g, t) <= CPU_FUSE_MAX_GFLOP * 1e9
    return False


def plan_groups(
    n_specs: int,
    device: str,
    gpt_config: GPTConfig,
    train_config: TrainConfig,
    fuse: str = "auto",
    max_members: int | None = None,
    *,
    free: int | None = None,
) -> list[int]:
    """Group sizes (summing to n_specs) for n_specs runs of one fuse_key on device (resolved:
    cpu, cuda, mps): as few groups as memory and max_members allow, sizes balanced (10 runs,
    8 at most: 5 + 5). fuse "off", or "auto" where fusing does not pay, or fp16 or mps: all
    1 (train alone). "on": fuse wherever memory allows (benchmarks, tests). A group of 1 is
    a solo run: train it with `model.train.Trainer`."""
    if fuse not in FUSE_CHOICES:
        raise ValueError(f"fuse must be one of {', '.join(FUSE_CHOICES)} (got {fuse!r})")
    if max_members is not None and max_members < 1:
        raise ValueError(f"max_members must be >= 1 (got {max_members})")
    if n_specs <= 0:
        return []
    solo = [1] * n_specs
    if fuse == "off" or device not in ("cpu", "cuda") or train_config.amp == "fp16":
        return solo
    if fuse == "auto" and not fusion_pays(device, gpt_config, train_config):
        return solo
    cap = min(members_that_fit(device, gpt_config, train_config, free), max_members or n_specs)
    groups = math.ceil(n_specs / cap)
    base, extra = divmod(n_specs, groups)
    return [base + 1] * extra + [base] * (groups - extra)
