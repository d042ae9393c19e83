"""FusedTrainer: K same-shape runs trained as one model, each still a run of its own.

Member k starts from the weights its seed gives alone, trains on the batches its seed
draws alone, with its own dropout masks, lr schedule, clipping norm and AdamW state, and
raises its own `TrainerHooks` events: on_step (at every host check: every step on the CPU,
every 10 steps and at evals on CUDA, as the solo Trainer), on_eval, on_checkpoint (its own
best checkpoint in out_dir, the solo format) and on_sample. It fails alone: a non-finite
loss or val loss (DivergenceError with its step), or an Exception from one of its hooks,
ends that member (its row is zeroed and no longer updated; the others' numbers do not
change), and the others train on. A BaseException that is not an Exception (Ctrl-C, the
orchestrator's Interrupted) propagates out of run().
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from model.config import SampleConfig, TrainConfig
from model.data import Dataset
from model.errors import ConfigError
from model.fused.model import Drops, Shape
from model.fused.params import FlatParams
from model.fused.plan import fuse_key
from model.fused.sample import Decoder, sample_members
from model.fused.steps import GroupSteps, StepCache
from model.gpt import GPT, GPTConfig
from model.masks import GeneratorMasks, HashMasks
from model.runs import (
    DivergenceError,
    TrainerHooks,
    checkpoint_dict,
    lr_factor,
    peak_mem_mb,
    resolve_amp,
    resolve_device,
    resolve_threads,
    save_atomic,
)


@dataclass
class Member:
    """One run of a group: what a solo Trainer takes."""

    gpt: GPTConfig
    train: TrainConfig
    out_dir: Path
    hooks: TrainerHooks | None = None
    sample: SampleConfig | None = None


@dataclass
class MemberResult:
    """`summary` (the keys of `Trainer.run()`'s) when the member trained to the end, else
    `error`: a DivergenceError (with .step) or what its hook raised."""

    summary: dict[str, float] | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def default_mode(device: str) -> str:
    """CUDA: compiled and captured in graphs; elsewhere eager (compiling measured 0.96x of
    eager on this project's CPU)."""
    return "compile+graphs" if device == "cuda" else "eager"


class FusedTrainer:
    def __init__(
        self,
        members: list[Member],
        dataset: Dataset,
        *,
        mode: str | None = None,
        cache: StepCache | None = None,
        masks: str | None = None,
        optimizer: str | None = None,
    ):
        """mode: one of steps.MODES (default: `default_mode`); cache: compiled steps to
        share with other groups of the process. masks ("generator" | "hash") and optimizer
        ("member" | "tensor") override the device's choice (tests run CUDA's on the CPU)."""
        if not members:
            raise ValueError("a fused group needs at least one member")
        vocab = dataset.tokenizer.vocab_size
        self.members = [replace(m, gpt=replace(m.gpt, vocab_size=vocab)) for m in members]
        keys = {fuse_key(m.gpt, m.train) for m in self.members}
        if len(keys) > 1:
            raise ValueError(f"members differ in shape, cannot fuse: {sorted(map(str, keys))}")
        dataset.check_block_size(self.members[0].gpt.block_size)
        self.dataset = dataset
        self.cfg = self.members[0].train
        self.device = resolve_device(self.cfg.device)
        self.dtype = resolve_amp(self.cfg.amp, self.device)
        if self.dtype == torch.float16:
            raise ConfigError("amp", "fused training has no fp16 loss scaling; use bf16 or off")
        self.threads = resolve_threads(self.cfg.threads)
        self.mode = mode or default_mode(self.device)
        self.cache = cache
        self.masks = masks or ("generator" if self.device == "cpu" else "hash")
        if self.masks not in ("generator", "hash") or (self.masks, self.device) == (
            "generator",
            "cuda",
        ):
            raise ValueError(f"masks {self.masks!r} cannot run on {self.device}")
        self.optimizer = optimizer
        self.params: FlatParams | None = None
        self.notes: list[str] = []
        self.last_run: Run | None = None  # after an interrupt: which members had failed

    def run(self) -> list[MemberResult]:
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            self.last_run = Run(self)
            return self.last_run.loop()
        finally:
            torch.set_num_threads(previous)

    def member_model(self, k: int) -> GPT:
        """Member k's current weights as a solo GPT (eval mode, on the group's device)."""
        return self.params.member_model(k, self.device)


class Run:
    """One run() of a FusedTrainer: the host side of the loop, member by member."""

    def __init__(self, t: FusedTrainer):
        self.t, self.cfg = t, t.cfg
        ms, dev = t.members, t.device
        self.t_start = time.perf_counter()
        g0 = ms[0].gpt
        seeds = [m.train.seed for m in ms]
        t.params = self.params = FlatParams(g0, seeds, dev)
        self.shape = Shape(len(ms), g0.n_layer, g0.n_head, g0.n_embed, g0.vocab_size,
                           g0.block_size, g0.bias, any(m.gpt.dropout > 0 for m in ms))  # fmt: skip
        drops = None
        if self.shape.dropout:
            masks = GeneratorMasks(seeds) if t.masks == "generator" else HashMasks(seeds, dev)
            drops = Drops(masks, [m.gpt.dropout for m in ms], dev)
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        cfgs = [m.train for m in ms]
        self.steps = GroupSteps(self.params, cfgs, self.shape, drops, t.dataset, dev, t.dtype,
                                t.mode, t.cache, t.optimizer)  # fmt: skip
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.hooks = [m.hooks or TrainerHooks() for m in ms]
        self.results = [MemberResult() for _ in ms]
        self.alive = [True] * len(ms)
        self.best = [(math.inf, 0)] * len(ms)  # (val loss, step)
        self.metrics: list[dict] = [{} for _ in ms]
        self.tokens_per_step = self.cfg.batch_size * g0.block_size
        self.decoder = None

    def fail(self, k: int, error: Exception) -> None:
        self.results[k].error = error
        self.alive[k] = False
        self.params.zero_member(k)
        self.steps.opt.zero_member(k)

    def call(self, k: int, fn, *args) -> None:
        """A hook of member k: an Exception fails member k alone."""
        try:
            fn(*args)
        except Exception as e:
            self.fail(k, e)

    def batches(self, n: int) -> torch.Tensor:
        """(n, K, B) start indices of the next n steps, each member from its own generator."""
        hi = len(self.t.dataset.train) - self.shape.block_size
        B = self.cfg.batch_size
        return torch.stack(
            [
                torch.stack([torch.randint(hi, (B,), generator=g) for g in self.gens])
                for _ in range(n)
            ]
        )

    def loop(self) -> list[MemberResult]:
        cfg, steps = self.cfg, self.steps
        step, train_time, total_time, since_eval, timed_steps = 0, 0.0, 0.0, 0, 0
        while step < cfg.max_steps and any(self.alive):
            next_eval = min((step // cfg.eval_every + 1) * cfg.eval_every, cfg.max_steps)
            n = min(steps.check_every, next_eval - step)
            steps.start_segment(self.batches(n))
            t0, c0 = steps.timed_sync(), steps.compile_s
            for _ in range(n):
                steps.train()
            losses = steps.read_losses(n)
            spent = time.perf_counter() - t0 - (steps.compile_s - c0)
            train_time += spent
            step += n
            since_eval += n
            if steps.compile_s == c0:
                timed_steps += n
                total_time += spent
            tps = since_eval * self.tokens_per_step / max(train_time, 1e-9)
            for k in self.live():
                bad = [(j, v[k]) for j, v in enumerate(losses) if not math.isfinite(v[k])]
                if bad:
                    self.fail(k, DivergenceError(step - n + 1 + bad[0][0], bad[0][1]))
                else:
                    self.call(k, self.hooks[k].on_step, step, losses[-1][k], tps)
            if step == next_eval and any(self.alive):
                self.evaluate(step, tps)
                train_time, since_eval = 0.0, 0
        self.finish(timed_steps, total_time)
        self.t.notes = self.steps.all_notes
        return self.results

    def live(self) -> list[int]:
        return [k for k, a in enumerate(self.alive) if a]

    def evaluate(self, step: int, tps: float) -> None:
        means = self.steps.evaluate()
        for k in self.live():
            train_loss, val_loss = means[k]
            if not math.isfinite(val_loss):
                self.fail(k, DivergenceError(step, val_loss))
                continue
            c = self.t.members[k].train
            m = {
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_ppl": math.exp(min(val_loss, 700.0)),
                "lr": c.lr * lr_factor(step - 1, c),
                "tokens_per_s": tps,
            }
            self.metrics[k] = m
            self.call(k, self.hooks[k].on_eval, step, m)
            if self.alive[k] and val_loss < self.best[k][0]:
                self.best[k] = (val_loss, step)
                self.checkpoint(k, step, m)
        self.samples(step)

    def checkpoint(self, k: int, step: int, metrics: dict) -> None:
        member, ds = self.t.members[k], self.t.dataset
        path = member.out_dir / member.train.save_best
        sd = self.params.member_state_dict(k)
        ck = checkpoint_dict(sd, member.gpt, ds.tokenizer, member.train, step,
                             metrics["val_loss"], ds.identity())  # fmt: skip
        save_atomic(ck, path)
        self.call(k, self.hooks[k].on_checkpoint, path, metrics)

    def samples(self, step: int) -> None:
        """Members with the same sample settings are sampled together, one forward a token;
        on CUDA all of them at once through a Decoder (a token: one graph launch)."""
        if self.t.device == "cuda":
            self.decoder_samples(step)
            return
        by_cfg: dict[SampleConfig, list[int]] = {}
        for k in self.live():
            sc = self.t.members[k].sample
            if sc is not None and sc.max_new_tokens > 0:
                by_cfg.setdefault(sc, []).append(k)
        for sc, ks in by_cfg.items():
            seeds = [self.t.members[k].train.seed for k in ks]
            data = self.params.data.detach()
            rows = data[ks] if len(ks) < self.params.members else data
            texts = sample_members(rows, self.params.layout, self.shape,
                                   self.t.dataset.tokenizer, sc, seeds)  # fmt: skip
            for k, text in zip(ks, texts, strict=True):
                self.call(k, self.hooks[k].on_sample, step, text)

    def decoder_samples(self, step: int) -> None:
        live = set(self.live())
        cfgs = [m.sample if k in live and m.sample and m.sample.max_new_tokens > 0 else None
                for k, m in enumerate(self.t.members)]  # fmt: skip
        if not any(cfgs):
            return
        if self.decoder is None:
            capture = "graphs" in self.t.mode
            self.decoder = Decoder(self.params.data, self.params.layout, self.shape, capture,
                                   self.steps.notes)  # fmt: skip
        seeds = [m.train.seed for m in self.t.members]
        texts = self.decoder.generate(self.t.dataset.tokenizer, cfgs, seeds)
        for k, text in enumerate(texts):
            if text is not None:
                self.call(k, self.hooks[k].on_sample, step, text)

    def finish(self, timed_steps: int, total_time: float) -> None:
        cfg, K = self.cfg, len(self.alive)
        wall = time.perf_counter() - self.t_start
        peak = peak_mem_mb(self.t.device)
        if self.t.device == "cuda":
            peak /= K  # the group's peak, shared
        for k in self.live():
            best, best_step = self.best[k]
            m = self.metrics[k]
            self.results[k].summary = {
                "best_val_loss": best,
                "best_val_ppl": math.exp(min(best, 700.0)),
                "best_step": best_step,
                "final_train_loss": m["train_loss"],
                "final_val_loss": m["val_loss"],
                "wall_s": wall,
                "tokens_per_s": timed_steps * self.tokens_per_step / max(total_time, 1e-9),
                "params": self.params.n_params,
                "peak_mem_mb": peak,
                "steps": cfg.max_steps,
                "threads": self.t.threads,
                "compile_s": self.steps.compile_s,
            }
