"""TrainConfig and Trainer: AMP, grad accumulation, warmup + cosine, clipping, eval,
best checkpoint. The trainer knows nothing about logging; it reports through hooks.

Steps are counted from 1: `on_step(n, ...)` follows the n-th optimizer step, evals happen
after step n when n % eval_every == 0 and after the last step. `lr_factor` takes the
0-based step index, exactly as the course notes write it.
"""

from __future__ import annotations

import math
import os
import resource
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import torch

from model.config import AMPS, DEVICES, SampleConfig, TrainConfig
from model.data import Dataset
from model.errors import ConfigError
from model.files import atomic_path
from model.footprint import check_fits
from model.gpt import GPT, GPTConfig
from model.sample import CHECKPOINT_FORMAT, generate_text

# What trained a run, as far as its numbers go: bump it whenever a change to this package
# changes what the same config and seed train to (the orchestrator records it with every run
# and reuses a finished run only for the same version).
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


def configure_optimizer(model: GPT, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW; weight decay on 2-D weights only (matmuls, embeddings), as nanoGPT does."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    kw = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    try:
        return torch.optim.AdamW(groups, fused=True, **kw)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, foreach=True, **kw)


def save_atomic(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Trainer:
    def __init__(
        self,
        gpt_config: GPTConfig,
        train_config: TrainConfig,
        dataset: Dataset,
        *,
        out_dir: Path,
        hooks: TrainerHooks | None = None,
        sample_config: SampleConfig | None = None,
    ):
        self.gpt_config = replace(gpt_config, vocab_size=dataset.tokenizer.vocab_size)
        self.cfg = train_config
        self.dataset = dataset
        dataset.check_block_size(self.gpt_config.block_size)
        self.out_dir = Path(out_dir)
        self.hooks = hooks or TrainerHooks()
        self.sample_config = sample_config
        self.device = resolve_device(train_config.device)
        self.dtype = resolve_amp(train_config.amp, self.device)
        self.threads = resolve_threads(train_config.threads)
        # before anything is allocated: a model or batch the device cannot hold is refused
        self.footprint = check_fits(
            self.gpt_config, train_config, self.device, self.dtype is not None
        )
        self.model: GPT | None = None

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device, dtype=self.dtype)

    @torch.inference_mode()
    def evaluate(self, model: GPT) -> dict[str, float]:
        """Mean loss over eval_iters batches per split; the same batches at every eval."""
        cfg, block = self.cfg, self.gpt_config.block_size
        g = torch.Generator().manual_seed(cfg.seed + 1)
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = torch.zeros(cfg.eval_iters, device=self.device)
            for i in range(cfg.eval_iters):
                x, y = self.dataset.get_batch(split, cfg.batch_size, block, g, self.device)
                with self.autocast():
                    _, loss = model(x, y)
                losses[i] = loss
            out[f"{split}_loss"] = losses.mean().item()
        model.train()
        return out

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def run(self) -> dict[str, float]:
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(previous)

    def _run(self) -> dict[str, float]:
        # long: the training loop reads as one piece, as nanoGPT's train.py does
        cfg, dev = self.cfg, self.device
        t_start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = GPT(self.gpt_config).to(dev)
        self.model = model
        opt = configure_optimizer(model, cfg, dev)
        scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        micro = cfg.batch_size // cfg.grad_accum_steps
        block = self.gpt_config.block_size
        tokens_per_step = cfg.batch_size * block
        check_every = 10 if dev == "cuda" else 1  # host syncs to look at the loss
        buf = torch.zeros(check_every, device=dev)
        n_buf, last_loss = 0, float("nan")
        best_val, best_step, metrics = float("inf"), 0, {}
        train_time, total_train_time, t_mark = 0.0, 0.0, time.perf_counter()
        steps_since_eval = 0
        model.train()
        for i in range(cfg.max_steps):
            step = i + 1
            lr = cfg.lr * lr_factor(i, cfg)
            for pg in opt.param_groups:
                pg["lr"] = lr
            step_loss = torch.zeros((), device=dev)
            # one batch per step, split into micro-batches: accumulation changes memory, not data
            xb, yb = self.dataset.get_batch("train", cfg.batch_size, block, gen, dev)
            for x, y in zip(xb.split(micro), yb.split(micro), strict=True):
                with self.autocast():
                    _, loss = model(x, y)
                loss = loss / cfg.grad_accum_steps
                step_loss += loss.detach()
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
            if scaler is not None:
                scaler.unscale_(opt)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            buf[n_buf] = step_loss
            n_buf += 1
            steps_since_eval += 1
            is_eval = step % cfg.eval_every == 0 or step == cfg.max_steps
            if n_buf == check_every or is_eval:
                values = buf[:n_buf].tolist()
                for j, v in enumerate(values):
                    if not math.isfinite(v):
                        raise DivergenceError(step - n_buf + 1 + j, v)
                last_loss, n_buf = values[-1], 0
                elapsed = train_time + time.perf_counter() - t_mark
                self.hooks.on_step(
                    step, last_loss, steps_since_eval * tokens_per_step / max(elapsed, 1e-9)
                )
            if not is_eval:
                continue
            self.sync()
            train_time += time.perf_counter() - t_mark
            total_train_time += train_time
            losses = self.evaluate(model)
            if not math.isfinite(losses["val_loss"]):
                raise DivergenceError(step, losses["val_loss"])
            metrics = {
                **losses,
                "val_ppl": math.exp(min(losses["val_loss"], 700.0)),
                "lr": lr,
                "tokens_per_s": steps_since_eval * tokens_per_step / max(train_time, 1e-9),
            }
            self.hooks.on_eval(step, metrics)
            if metrics["val_loss"] < best_val:
                best_val, best_step = metrics["val_loss"], step
                path = self.out_dir / cfg.save_best
                save_atomic(self.checkpoint(model, step, metrics["val_loss"]), path)
                self.hooks.on_checkpoint(path, metrics)
            sc = self.sample_config
            if sc is not None and sc.max_new_tokens > 0:
                text, _ = generate_text(
                    model, self.dataset.tokenizer, sc, seed=cfg.seed, device=dev
                )
                model.train()
                self.hooks.on_sample(step, text)
            train_time, steps_since_eval = 0.0, 0
            t_mark = time.perf_counter()
        return {
            "best_val_loss": best_val,
            "best_val_ppl": math.exp(min(best_val, 700.0)),
            "best_step": best_step,
            "final_train_loss": metrics["train_loss"],
            "final_val_loss": metrics["val_loss"],
            "wall_s": time.perf_counter() - t_start,
            "tokens_per_s": cfg.max_steps * tokens_per_step / max(total_train_time, 1e-9),
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "peak_mem_mb": peak_mem_mb(dev),
            "steps": cfg.max_steps,
            "threads": self.threads,
        }

    def checkpoint(self, model: GPT, step: int, val_loss: float) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "model_config": asdict(self.gpt_config),
            "tokenizer": self.dataset.tokenizer.to_dict(),
            "train_config": asdict(self.cfg),
            "step": step,
            "val_loss": float(val_loss),
            "dataset": self.dataset.identity(),
        }


def peak_mem_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
