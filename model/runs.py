"""What every trainer shares (the solo `Trainer` of model/train.py and the fused one of
model/fused/): the lr schedule, device and amp resolution, the hooks and the divergence
error, the checkpoint dict. `lr_factor` takes the 0-based step index, exactly as the course
notes write it.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import asdict
from pathlib import Path

import torch

from model.config import AMPS, DEVICES, TrainConfig
from model.errors import ConfigError
from model.files import atomic_path
from model.sample import CHECKPOINT_FORMAT

# The training code's version, recorded with every run, so that results of older code are
# never reused as equal. Bump it whenever a config, seed and corpus would train to other
# numbers. 2: dropout masks from a per-run stream (model/masks.py) instead of torch's
# global generator (what lets a run train alone or in a fused group to the same numbers);
# the fused trainer (model/fused/); on CUDA, runs train through the fused path.
TRAIN_CODE_VERSION = 2


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The course notes' schedule: linear warmup, then constant or cosine to min_lr_ratio."""
    if step < cfg.warmup_steps:
        return max(1e-8, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    m = cfg.min_lr_ratio
    return m + 0.5 * (1 - m) * (1 + math.cos(math.pi * progress))


def resolve_device(device: str) -> str:
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "device cuda is not available here; use device=auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", "device mps is not available here; use device=auto or cpu")
    if device not in DEVICES:
        raise ConfigError("device", f"device must be one of {', '.join(DEVICES)} (got {device!r})")
    return device


def cpu_features() -> dict:
    """CPU feature flags as torch's cpuinfo reads them; /proc/cpuinfo flags where it cannot."""
    try:
        return dict(torch._C._cpu._get_cpu_capability())
    except (AttributeError, RuntimeError):
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
        flags = next(
            (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
        )
        return {f: True for f in flags}


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16).

    Without it oneDNN/MKL emulate bf16 matmuls: measured 0.3-1 GFLOP/s against 110-170
    GFLOP/s fp32 on an AVX2 EPYC, a step hundreds of times slower than fp32.
    """
    f = cpu_features()
    return bool(f.get("avx512_bf16") or f.get("amx_bf16"))


def resolve_amp(amp: str, device: str) -> torch.dtype | None:
    """The autocast dtype for amp on device, or None for plain fp32.

    auto: bf16 on GPUs that have it, else fp16; on CPUs bf16 only where the CPU has native
    bf16 (cpu_has_native_bf16), fp32 everywhere else (mps included).
    """
    if amp == "off":
        return None
    if amp == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if amp == "bf16":
        if device == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("amp", "amp bf16 is not supported by this GPU; use amp=fp16 or off")
        return torch.bfloat16
    if amp == "fp16":
        if device != "cuda":
            raise ConfigError(
                "amp", f"amp fp16 needs a CUDA device (device is {device}); use amp=bf16 or off"
            )
        return torch.float16
    raise ConfigError("amp", f"amp must be one of {', '.join(AMPS)} (got {amp!r})")


# torch's own choice at import (physical cores, or OMP_NUM_THREADS), before any run sets it
DEFAULT_THREADS = torch.get_num_threads()


def resolve_threads(threads: int) -> int:
    """The torch thread count a run uses: `threads` if > 0, else auto.

    auto = torch's default (physical cores, OMP_NUM_THREADS where set), capped by the CPUs
    this process may run on. It does not look at the load: the thread count changes the
    order of float sums, so a load-dependent choice would make the same config give
    different losses. On a loaded machine (e.g. several local workers) pass threads
    explicitly: on 2 cores with one busy neighbour, 1 thread stepped 1.65x faster than 2.
    """
    if threads > 0:
        return threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(DEFAULT_THREADS, cpus))


class DivergenceError(RuntimeError):
    def __init__(self, step: int, loss: float):
        self.step = step
        self.loss = loss
        super().__init__(f"non-finite loss ({loss}) at step {step}")


class TrainerHooks:
    """Events raised by the Trainer; all no-ops. Exceptions raised here propagate."""

    def on_step(self, step: int, loss: float, tokens_per_s: float) -> None: ...

    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_checkpoint(self, path: Path, metrics: dict[str, float]) -> None: ...

    def on_sample(self, step: int, text: str) -> None: ...


def checkpoint_dict(
    state_dict: dict, gpt_config, tokenizer, train_config: TrainConfig, step: int,
    val_loss: float, dataset: dict,
) -> dict:  # fmt: skip
    """A best checkpoint as `model.sample.load_checkpoint` reads it."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": state_dict,
        "model_config": asdict(gpt_config),
        "tokenizer": tokenizer.to_dict(),
        "train_config": asdict(train_config),
        "step": step,
        "val_loss": float(val_loss),
        "dataset": dataset,
    }


def save_atomic(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def peak_mem_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
