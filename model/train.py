"""TrainConfig and Trainer: AMP, grad accumulation, warmup + cosine, clipping, eval,
best checkpoint. The trainer knows nothing about logging; it reports through hooks.

Steps are counted from 1: `on_step(n, ...)` follows the n-th optimizer step, evals happen
after step n when n % eval_every == 0 and after the last step. `lr_factor` takes the
0-based step index, exactly as the course notes write it.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from model.config import AMPS, DEVICES, SampleConfig, TrainConfig  # noqa: F401  (re-exported)
from model.data import Dataset
from model.footprint import check_fits
from model.gpt import GPT, GPTConfig
from model.masks import GeneratorMasks
from model.runs import (  # noqa: F401  (re-exported: the orchestrator imports them from here)
    TRAIN_CODE_VERSION,
    DivergenceError,
    TrainerHooks,
    busy_cpus,
    checkpoint_dict,
    cpu_features,
    cpu_has_native_bf16,
    lr_factor,
    peak_mem_mb,
    resolve_amp,
    resolve_device,
    resolve_threads,
    save_atomic,
    unavailable,
    usable_cpus,
)
from model.sample import generate_text


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
        self.step_cache = None  # a model.fused.steps.StepCache to share compiled steps (CUDA)

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
        if self.device == "cuda" and self.dtype != torch.float16:
            return self.run_fused()
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(previous)

    def run_fused(self) -> dict[str, float]:
        """On CUDA a run trains as a fused group of one (model/fused/): CUDA graphs, no
        per-step host syncs; fp16 (loss scaling) stays on the eager path below."""
        from model.fused.trainer import FusedTrainer, Member

        member = Member(self.gpt_config, self.cfg, self.out_dir, self.hooks, self.sample_config)
        trainer = FusedTrainer([member], self.dataset, cache=self.step_cache)
        result = trainer.run()[0]
        self.model = trainer.member_model(0)
        if result.error is not None:
            raise result.error
        return result.summary

    def _run(self) -> dict[str, float]:
        # long: the training loop reads as one piece, as nanoGPT's train.py does
        cfg, dev = self.cfg, self.device
        t_start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = GPT(self.gpt_config).to(dev)
        if dev == "cpu":
            model.masks = GeneratorMasks([cfg.seed])  # the run's own dropout stream
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
            "compile_s": 0.0,
        }

    def checkpoint(self, model: GPT, step: int, val_loss: float) -> dict:
        return checkpoint_dict(
            model.state_dict(), self.gpt_config, self.dataset.tokenizer, self.cfg, step,
            val_loss, self.dataset.identity(),
        )  # fmt: skip
