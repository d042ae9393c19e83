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
# never reused as equal (the orchestrator reuses a finished run only for the same version).
# Bump it whenever a config, seed and corpus would train to other numbers. 3: dropout masks
# from a per-run stream (model/masks.py) instead of torch's global generator (what lets a
# run train alone or in a fused group to the same numbers); the fused trainer
# (model/fused/); on CUDA, runs train through the fused path.
TRAIN_CODE_VERSION = 3


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
        raise ConfigError("device", unavailable("cuda"))
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", unavailable("mps"))
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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_cpus() -> float:
    """How many CPUs other work keeps busy now: the smaller of the 1-minute load average and
    the runnable threads this instant less this one (/proc/loadavg), so a run of this very
    sweep that just ended (still in the average) does not count as a neighbour."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            fields = f.read().split()
        return max(0.0, min(float(fields[0]), int(fields[3].split("/")[0]) - 1))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


def unavailable(device: str) -> str:
    return (
        f"device {device} is not available here (a profile for a GPU on a machine without "
        f"one?): add --set device=cpu, or --set device=auto (the GPU where there is one)"
    )


def resolve_threads(threads: int) -> int:
    """The torch thread count a run uses: `threads` if > 0 (at most the usable CPUs: more
    only makes the threads fight over cores), else auto.

    auto = torch's default (physical cores, OMP_NUM_THREADS where set), capped by the CPUs
    this process may run on and by those other work leaves free when the run starts
    (`busy_cpus`): on a loaded 2-core machine the default 2 threads stepped about 4x slower
    than 1. Determinism: the thread count changes the order of float sums, so the same
    config can end with slightly different losses under another load. The choice is
    therefore recorded with every run (`sweep.threads`, config.json) and kept out of the
    config hash (a run's identity is what it trains, not how); pass threads explicitly
    (`--threads N`) for bit-for-bit repeats.
    """
    cpus = usable_cpus()
    if threads > cpus:
        raise ConfigError(
            "threads",
            f"threads {threads} is more than the {cpus} CPU(s) this process may use; "
            f"pass at most {cpus}, or 0 (auto)",
        )
    if threads > 0:
        return threads
    free = max(1, math.floor(cpus - busy_cpus() + 0.5))
    return max(1, min(DEFAULT_THREADS, cpus, free))


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
