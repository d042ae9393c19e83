"""Trainer speed against a plain nanoGPT-style PyTorch loop, side by side, in one run.

Table 1 (per step): a reference loop (its own minimal nanoGPT model: nn.Dropout, SDPA,
torch AdamW as nanoGPT configures it on a CPU, fp32, eager, torch's default threads) and
sweep's Trainer in each setting it has, stepped in turn (one step each, round robin) so
that a noisy machine slows all of them alike. Median tokens/s of the timed steps, ratio to
the reference, share of this CPU's matmul peak (measured here), val loss after the same
steps (same batches, same seed).

Table 2 (end to end): a whole CPU-safe baseline (evals every 200 steps with 20 batches per
split, a 400-token sample at each eval, as the profile says), reference loop vs the
Trainer with its defaults, also in turns; each side's time is the time it held the CPU.

    python benchmarks/trainer.py [--steps 10] [--warmup 2] [--full-steps 1000] [--data FILE]
                                 [--compile] [--busy N] [--bf16] [--device cuda]

--device cuda: Table C instead, a step at nanoGPT's shakespeare-char shape on the GPU (a
plain nanoGPT loop eager, compiled and under CUDA graphs; sweep's Trainer, a fused K=1
eager and with graphs only, the Trainer at dropout 0 (attention through SDPA's fused
kernel instead of the explicit attention exact per-run masks need), a fused group of 8; ms a step, tokens/s, MFU against the bf16
matmul rate measured here, warm-up/compile seconds), then the whole 5000-step recipe
through the Trainer end to end (--full-steps 5000; 0 skips it).

On the 2-core EPYC with AVX512-BF16 this project runs on, table 1 takes about 3 minutes
and table 2 with the full 1000 steps about an hour (reference 2.3 s a step, sweep 1.1 s);
--full-steps 100 checks it in about 6 minutes, 0 skips it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import Dataset, resolve_corpus  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from model.sample import SampleConfig  # noqa: E402
from model.train import (  # noqa: E402
    TrainConfig,
    Trainer,
    TrainerHooks,
    configure_optimizer,
    cpu_has_native_bf16,
    lr_factor,
    resolve_amp,
)

# -- the reference: nanoGPT's model.py and train.py as they run on a CPU, nothing else ---------


class RefAttention(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(c.n_embed, 3 * c.n_embed, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embed, c.n_embed, bias=c.bias)
        self.resid_dropout = nn.Dropout(c.dropout)
        self.n_head, self.n_embed, self.dropout = c.n_head, c.n_embed, c.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embed, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class RefBlock(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embed, bias=c.bias)
        self.attn = RefAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embed, bias=c.bias)
        self.mlp = nn.Sequential(
            nn.Linear(c.n_embed, 4 * c.n_embed, bias=c.bias),
            nn.GELU(),
            nn.Linear(4 * c.n_embed, c.n_embed, bias=c.bias),
            nn.Dropout(c.dropout),
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c.vocab_size, c.n_embed)
        self.wpe = nn.Embedding(c.block_size, c.n_embed)
        self.drop = nn.Dropout(c.dropout)
        self.h = nn.ModuleList([RefBlock(c) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embed, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embed, c.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                scaled = name.endswith(("c_proj.weight", "mlp.2.weight"))
                std = 0.02 / math.sqrt(2 * c.n_layer) if scaled else 0.02
                nn.init.normal_(p, 0.0, std)
            else:
                nn.init.zeros_(p) if name.endswith("bias") else None

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for b in self.h:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, idx, n, temperature, top_k, generator):
        for _ in range(n):
            logits, _ = self(idx[:, -self.c.block_size :])
            logits = logits[:, -1, :] / temperature
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)
        return idx


def ref_name(name: str) -> str:
    """sweep's GPT parameter name -> RefGPT's."""
    name = name.removeprefix("transformer.")
    return name.replace("mlp.c_fc", "mlp.0").replace("mlp.c_proj", "mlp.2")


def reference_loop(gpt, cfg, sample, ds, turn, eval_at_end_only=False) -> dict:
    """nanoGPT's train.py loop on a CPU: fp32, eager, AdamW with nanoGPT's weight-decay
    groups (not fused: nanoGPT fuses only on CUDA), clip 1.0, the Trainer's schedule, evals
    and samples at the Trainer's cadence on the same batches."""
    m = RefGPT(gpt)
    torch.manual_seed(cfg.seed)  # the Trainer's initial weights, so only training differs
    start = GPT(gpt).state_dict()
    m.load_state_dict({ref_name(k): v for k, v in start.items()})
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )
    out = {}

    @torch.no_grad()
    def estimate_loss():
        g = torch.Generator().manual_seed(cfg.seed + 1)
        m.eval()
        res = {}
        for split in ("train", "val"):
            losses = torch.zeros(cfg.eval_iters)
            for i in range(cfg.eval_iters):
                x, y = ds.get_batch(split, cfg.batch_size, gpt.block_size, g)
                losses[i] = m(x, y)[1].item()
            res[split] = losses.mean().item()
        m.train()
        return res

    m.train()
    for i in range(cfg.max_steps):
        for pg in opt.param_groups:
            pg["lr"] = cfg.lr * lr_factor(i, cfg)
        x, y = ds.get_batch("train", cfg.batch_size, gpt.block_size, gen)
        _, loss = m(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        step = i + 1
        if (not eval_at_end_only and step % cfg.eval_every == 0) or step == cfg.max_steps:
            out = estimate_loss()
            if sample.max_new_tokens > 0:
                m.eval()
                g = torch.Generator().manual_seed(cfg.seed)
                m.generate(
                    torch.zeros(1, 1, dtype=torch.long),
                    sample.max_new_tokens,
                    sample.temperature,
                    sample.top_k,
                    g,
                )
                m.train()
        if step < cfg.max_steps:
            turn()
    return {"final_val_loss": out["val"]}


# -- taking turns: one step each, round robin, each player with its own RNG state --------------


class Players:
    def __init__(self):
        self.cv = threading.Condition()
        self.players: list[dict] = []
        self.turn = 0

    def add(self, name, fn, threads):
        self.players.append(
            {
                "name": name,
                "fn": fn,
                "threads": threads,
                "segments": [],
                "done": False,
                "rng": None,
                "t": 0.0,
                "result": None,
                "error": None,
            }
        )

    def _resume(self, p):
        with self.cv:
            while self.players[self.turn] is not p:
                self.cv.wait()
        if p["rng"] is not None:
            torch.set_rng_state(p["rng"])
        torch.set_num_threads(p["threads"])
        p["t"] = time.perf_counter()

    def _yield(self, p, finished=False):
        p["segments"].append(time.perf_counter() - p["t"])
        p["rng"] = torch.get_rng_state()
        with self.cv:
            p["done"] = finished
            n = len(self.players)
            for k in range(1, n + 1):
                q = self.players[(self.turn + k) % n]
                if not q["done"]:
                    self.turn = (self.turn + k) % n
                    break
            self.cv.notify_all()

    def run(self):
        def body(p):
            self._resume(p)

            def turn():
                self._yield(p)
                self._resume(p)

            try:
                p["result"] = p["fn"](turn)
            except BaseException as e:  # reported after the join
                p["error"] = e
            self._yield(p, finished=True)

        threads = [threading.Thread(target=body, args=(p,)) for p in self.players]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in self.players:
            if p["error"] is not None:
                raise p["error"]
        return self.players


class TurnHook(TrainerHooks):
    def __init__(self, turn, last):
        self.turn, self.last = turn, last

    def on_step(self, step, loss, tokens_per_s):
        if step < self.last:
            self.turn()


def trainer_player(gpt, cfg, ds, sample=None):
    def fn(turn):
        with tempfile.TemporaryDirectory() as d:
            t = Trainer(
                gpt,
                cfg,
                ds,
                out_dir=Path(d),
                hooks=TurnHook(turn, cfg.max_steps),
                sample_config=sample,
            )
            return t.run()

    return fn


def compiled_player(gpt, cfg, ds, mode: str | None):
    """The Trainer's step (sweep's GPT, fused AdamW, bf16 autocast where the CPU has it,
    clipping, the same batches) on a torch.compile'd model: not a product setting, timed here
    so the table shows whether compiling pays. The first step's time includes compiling."""

    def fn(turn):
        torch.manual_seed(cfg.seed)
        m = GPT(replace(gpt, vocab_size=ds.tokenizer.vocab_size))
        fwd = torch.compile(m, mode=mode)
        opt = configure_optimizer(m, cfg, "cpu")
        dtype = resolve_amp(cfg.amp, "cpu")
        gen = torch.Generator().manual_seed(cfg.seed)
        m.train()
        for i in range(cfg.max_steps):
            for pg in opt.param_groups:
                pg["lr"] = cfg.lr * lr_factor(i, cfg)
            x, y = ds.get_batch("train", cfg.batch_size, gpt.block_size, gen)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                _, loss = fwd(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i + 1 < cfg.max_steps:
                turn()
        m.eval()
        g = torch.Generator().manual_seed(cfg.seed + 1)
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            losses = [
                m(*ds.get_batch("val", cfg.batch_size, gpt.block_size, g))[1].item()
                for _ in range(cfg.eval_iters)
            ]
        return {"final_val_loss": sum(losses) / len(losses)}

    return fn


def matmul_peak(dtype: torch.dtype, reps: int = 3) -> float:
    """Best GFLOP/s over a square matmul and the CPU-safe shape's largest (8192x256x1024)."""
    best = 0.0
    small = dtype != torch.float32 and not cpu_has_native_bf16()  # emulated: keep it short
    for m, k, n in [(256, 256, 256)] if small else [(2048, 2048, 2048), (8192, 256, 1024)]:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        a @ b
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


# -- CUDA (Table C): a step at nanoGPT's shakespeare-char shape, and the whole recipe -------


def nanogpt_shakespeare(device: str = "cuda", max_steps: int = 5000):
    """nanoGPT's config/train_shakespeare_char.py as sweep configs (bf16)."""
    gpt = GPTConfig(block_size=256, n_layer=6, n_head=6, n_embed=384, dropout=0.2, bias=False)
    cfg = TrainConfig(max_steps=max_steps, batch_size=64, lr=1e-3, min_lr_ratio=0.1,
                      weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, warmup_steps=100,
                      schedule="cosine", eval_every=250, eval_iters=200, amp="bf16", device=device)  # fmt: skip
    return gpt, cfg


def flops_per_token(gpt: GPTConfig) -> float:
    """nanoGPT's estimate_mfu: 6 N + 12 L C T (N without the position embedding)."""
    n = sum(p.numel() for p in RefGPT(gpt).parameters()) - gpt.block_size * gpt.n_embed
    return 6 * n + 12 * gpt.n_layer * gpt.n_embed * gpt.block_size


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def cuda_matmul_tflops(device: str = "cuda", n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 matmul rate of this GPU (the MFU denominator); on a CPU (dry runs) a
    small one."""
    if device != "cuda":
        n, reps = 512, 3
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def plain_cuda_ms(gpt, cfg, ds, mode: str | None, steps: int, warmup: int) -> tuple[float, float]:
    """(ms a step, s of warm-up) of nanoGPT's loop on CUDA: RefGPT, bf16 autocast, fused
    AdamW, clipping, batches pinned and copied asynchronously, no host sync a step; mode
    None = eager, else torch.compile(model, mode=mode) ("default", "reduce-overhead")."""
    gpt = replace(gpt, vocab_size=ds.tokenizer.vocab_size)
    dev = cfg.device
    torch.manual_seed(cfg.seed)
    m = RefGPT(gpt).to(dev)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=dev == "cuda",
    )  # fmt: skip
    fwd = m if mode is None else torch.compile(m, mode=None if mode == "default" else mode)
    gen = torch.Generator().manual_seed(cfg.seed)
    m.train()
    t0 = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            sync(dev)
            t_warm, t0 = time.perf_counter() - t0, time.perf_counter()
        for pg in opt.param_groups:
            pg["lr"] = cfg.lr * lr_factor(i, cfg)
        x, y = ds.get_batch("train", cfg.batch_size, gpt.block_size, gen, dev)
        with torch.autocast(dev, dtype=torch.bfloat16):
            _, loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(dev)
    return (time.perf_counter() - t0) / steps * 1e3, t_warm


class Clock(TrainerHooks):
    """(time, step) at each host check (every 10 steps on CUDA, after a sync)."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step(self, step, loss, tokens_per_s):
        self.marks.append((time.perf_counter(), step))


def sweep_cuda_ms(gpt, cfg, ds, K: int, mode: str | None, steps: int, cache=None) -> dict:
    """ms a step of a fused group of K on CUDA (K=1 with mode None: the Trainer's own path),
    timed from the end of the first 10 steps (compiling, capturing) to the last check."""
    from model.fused import FusedTrainer, Member

    cfg = replace(cfg, max_steps=10 + steps, eval_every=10 + steps, eval_iters=2)
    clock = Clock()
    with tempfile.TemporaryDirectory() as d:
        if K == 1 and mode is None:
            t = Trainer(gpt, cfg, ds, out_dir=Path(d), hooks=clock)
            t.step_cache = cache
            summary = t.run()
        else:
            ms = [Member(replace(gpt), replace(cfg, seed=cfg.seed + k), Path(d) / str(k))
                  for k in range(K)]  # fmt: skip
            ms[0].hooks = clock
            r = FusedTrainer(ms, ds, mode=mode, cache=cache).run()[0]
            if r.error is not None:
                raise r.error
            summary = r.summary
    (t0, s0), (t1, s1) = clock.marks[0], clock.marks[-1]
    return {"ms": (t1 - t0) / (s1 - s0) * 1e3, "compile_s": summary["compile_s"],
            "peak_mb": summary["peak_mem_mb"]}  # fmt: skip


def cuda_table(ds, steps=50, warmup=15, gpt=None, cfg=None, rows=None, cache=None) -> list:
    """Table C rows: (setting, ms a step, tokens/s, MFU, warm-up/compile s). `rows` limits
    them (names as below); a row that fails is printed with its error and skipped."""
    from model.fused import StepCache

    default_gpt, default_cfg = nanogpt_shakespeare()
    gpt, cfg = gpt or default_gpt, cfg or default_cfg
    dev = cfg.device
    peak = cuda_matmul_tflops(dev)
    fpt = flops_per_token(replace(gpt, vocab_size=ds.tokenizer.vocab_size))
    tok = cfg.batch_size * gpt.block_size
    cache = cache or StepCache()
    settings = {
        "nanoGPT loop, eager": lambda: (*plain_cuda_ms(gpt, cfg, ds, None, steps, warmup), 1),
        "nanoGPT loop, compiled": lambda: (*plain_cuda_ms(gpt, cfg, ds, "default", steps, warmup), 1),
        "nanoGPT loop, CUDA graphs": lambda: (*plain_cuda_ms(gpt, cfg, ds, "reduce-overhead", steps, warmup), 1),
        "sweep Trainer": lambda: sweep_row(gpt, cfg, ds, 1, None, steps, cache),
        "fused K=1, eager": lambda: sweep_row(gpt, cfg, ds, 1, "eager", steps, None),
        "fused K=1, graphs only": lambda: sweep_row(gpt, cfg, ds, 1, "graphs", steps, None),
        "sweep Trainer, dropout 0": lambda: sweep_row(
            replace(gpt, dropout=0.0), cfg, ds, 1, None, steps, cache
        ),  # SDPA's fused attention: what exact per-run attention dropout costs
        "fused K=8": lambda: sweep_row(gpt, cfg, ds, 8, None, steps, cache),
    }  # fmt: skip
    out = []
    print(f"\nTable C: {gpt.n_layer}x{gpt.n_embed}, {gpt.n_head} heads, block {gpt.block_size}, "
          f"batch {cfg.batch_size}, dropout {gpt.dropout}, bf16; {device_name(dev)}; "
          f"bf16 matmul measured {peak:.0f} TFLOP/s; {fpt / 1e6:.1f} MFLOP a token")  # fmt: skip
    head = f"{'setting':<28}{'ms/step':>9}{'tokens/s':>13}{'MFU':>7}{'warm-up s':>11}"
    print(head + "\n" + "-" * len(head), flush=True)
    for name, fn in settings.items():
        if rows is not None and name not in rows:
            continue
        try:
            ms, warm, K = fn()
        except Exception as e:  # a row that cannot run says why; the others still do
            print(
                f"{name:<28}failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}", flush=True
            )
            continue
        tps = K * tok / (ms / 1e3)
        out.append((name, ms, tps, fpt * tps / (peak * 1e12), warm))
        print(f"{name:<28}{ms:>9.2f}{tps:>13,.0f}{out[-1][3]:>7.1%}{warm:>11.1f}", flush=True)
    return out


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"


def sweep_row(gpt, cfg, ds, K, mode, steps, cache):
    if cfg.device != "cuda" and mode is not None:  # a dry run on the CPU: no graphs there
        mode = {"compile+graphs": "compile", "graphs": "eager"}.get(mode, mode)
    r = sweep_cuda_ms(gpt, cfg, ds, K, mode, steps, cache)
    return r["ms"], r["compile_s"], K


def recipe(
    ds, max_steps=5000, device="cuda", sample_tokens=400, gpt=None, cfg=None, cache=None
) -> dict:
    """The whole recipe through the Trainer: evals every 250 steps (200 batches a split),
    a sample at each; wall time end to end, with its compile time apart."""
    default_gpt, default_cfg = nanogpt_shakespeare(device, max_steps)
    gpt, cfg = gpt or default_gpt, cfg or default_cfg

    class Timer(TrainerHooks):
        def __init__(self):
            self.evals, self.samples = [], 0

        def on_eval(self, step, metrics):
            self.evals.append((step, metrics["val_loss"]))

        def on_sample(self, step, text):
            self.samples += 1

    h = Timer()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        t = Trainer(gpt, cfg, ds, out_dir=Path(d), hooks=h,
                    sample_config=SampleConfig(max_new_tokens=sample_tokens))  # fmt: skip
        t.step_cache = cache
        s = t.run()
    wall = time.perf_counter() - t0
    train_s = cfg.max_steps * cfg.batch_size * gpt.block_size / s["tokens_per_s"]
    return {"wall_s": wall, "compile_s": s["compile_s"], "train_s": train_s,
            "best_val_loss": s["best_val_loss"], "best_step": s["best_step"],
            "evals": len(h.evals), "samples": h.samples, "peak_mem_mb": s["peak_mem_mb"]}  # fmt: skip


def run_cuda(args, ds) -> None:
    cuda_table(ds, steps=args.steps * 5, warmup=15)
    if args.full_steps > 0:
        r = recipe(ds, args.full_steps)
        print(f"\nRecipe: {args.full_steps} steps through the Trainer, evals every 250 (200 batches "
              f"a split) and 400-token samples: {r['wall_s']:.1f} s end to end, of which compiling "
              f"and capturing {r['compile_s']:.1f} s and training steps {r['train_s']:.1f} s; best "
              f"val {r['best_val_loss']:.4f} at step {r['best_step']}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per setting (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--eval-iters", type=int, default=8, help="eval batches in table 1")
    p.add_argument(
        "--full-steps",
        type=int,
        default=1000,
        help="steps of the end-to-end baseline (table 2); 0 skips it",
    )
    p.add_argument("--profile", default=str(ROOT / "experiments/cpu-safe.toml"))
    p.add_argument("--data", default=None, help="corpus: shakespeare, pydoc or a file")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="time bf16 even where the CPU has no native bf16 (very slow there)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile (default mode) of sweep's model at amp=auto: not a "
        "product setting; shows whether it would pay (first step = compile time)",
    )
    p.add_argument(
        "--busy",
        type=int,
        default=0,
        help="run N busy-looping processes meanwhile (a loaded machine: threads matter)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cuda: Table C (a step at nanoGPT's shakespeare-char shape: plain loop eager, "
        "compiled, CUDA graphs; sweep's Trainer and fused groups; MFU) and the 5000-step "
        "recipe end to end (--full-steps)",
    )
    args = p.parse_args()
    print("$ python " + " ".join(sys.argv), flush=True)

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for proc in busy:
            proc.kill()


def run(args) -> None:
    corpus = resolve_corpus(args.data)
    if corpus.notice:
        print(corpus.notice, file=sys.stderr)
    ds = Dataset(corpus)
    if args.device == "cuda":
        run_cuda(args, ds)
        return
    prof = tomllib.loads(Path(args.profile).read_text())
    gpt = GPTConfig(**prof["model"])
    sample = SampleConfig(**prof.get("sample", {}))
    default_threads = torch.get_num_threads()
    steps = args.warmup + args.steps + 1
    base = TrainConfig(
        **{
            **prof["train"],
            "device": "cpu",
            "max_steps": steps,
            "eval_every": steps,
            "eval_iters": args.eval_iters,
        }
    )
    native = cpu_has_native_bf16()
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}

    settings = {"sweep fp32": {"amp": "off"}}
    if native or args.bf16:
        settings["sweep bf16"] = {"amp": "bf16"}
    if default_threads > 1:
        settings["sweep fp32, 1 thread"] = {"amp": "off", "threads": 1}
        if native or args.bf16:
            settings["sweep bf16, 1 thread"] = {"amp": "bf16", "threads": 1}
    game = Players()
    vc = replace(gpt, vocab_size=ds.tokenizer.vocab_size)
    game.add(
        "reference (nanoGPT loop)",
        lambda turn: reference_loop(
            vc, base, SampleConfig(max_new_tokens=0), ds, turn, eval_at_end_only=True
        ),
        default_threads,
    )
    for name, kw in settings.items():
        cfg = replace(base, **kw)
        game.add(name, trainer_player(gpt, cfg, ds), cfg.threads or default_threads)
    if args.compile:
        game.add(
            "sweep amp=auto, compiled",
            compiled_player(gpt, replace(base, amp="auto"), ds, None),
            default_threads,
        )
    t0 = time.perf_counter()
    players = game.run()
    t_table1 = time.perf_counter() - t0

    n_params = sum(p.numel() for p in RefGPT(vc).parameters()) - vc.block_size * vc.n_embed
    flops_per_token = 6 * n_params + 12 * gpt.n_layer * gpt.n_embed * gpt.block_size
    tok = base.batch_size * gpt.block_size
    print(
        f"\ncorpus {corpus.name}; torch {torch.__version__}; {default_threads} threads by "
        f"default; {args.busy} busy-looping processes meanwhile; CPU native bf16: {'yes' if native else 'no'}; matmul peak measured here: "
        f"fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s"
    )
    print(
        f"batch {base.batch_size} x block {gpt.block_size}, n_layer {gpt.n_layer}, n_embed "
        f"{gpt.n_embed}, n_head {gpt.n_head}, dropout {gpt.dropout}; {n_params / 1e6:.2f}M "
        f"params, {flops_per_token / 1e6:.1f} MFLOP/token"
    )
    print(
        f"Table 1: median of {args.steps} steps after {args.warmup} warm-up, settings in "
        f"turns; val loss after {steps} steps ({args.eval_iters} eval batches per split, same "
        f"batches and seed); {t_table1:.0f} s\n"
    )
    head = (
        f"{'setting':<26}{'threads':>8}{'tokens/s':>10}{'vs ref':>8}{'GFLOP/s':>9}"
        f"{'of peak':>9}{'val loss':>10}{'- ref':>8}"
    )
    print(head)
    print("-" * len(head))
    ref_tps = ref_val = None
    for pl in players:
        timed = pl["segments"][args.warmup + 1 : args.warmup + 1 + args.steps]
        tps = tok / statistics.median(timed)
        val = pl["result"]["final_val_loss"]
        if ref_tps is None:
            ref_tps, ref_val = tps, val
        auto_bf16 = "auto" in pl["name"] and native
        dt = "bf16" if "bf16" in pl["name"] or auto_bf16 else "fp32"
        gfl = flops_per_token * tps / 1e9
        print(
            f"{pl['name']:<26}{pl['threads']:>8}{tps:>10,.0f}{tps / ref_tps:>7.2f}x"
            f"{gfl:>9.1f}{gfl / peak[dt]:>9.1%}{val:>10.4f}{val - ref_val:>+8.4f}"
        )
    if not (native or args.bf16):
        print(
            f"{'sweep bf16':<26}  skipped: no native bf16 on this CPU (bf16 matmul "
            f"{peak['bf16']:.1f} GFLOP/s); amp=auto resolves to fp32 here (--bf16 to force)"
        )
    for pl in players:
        if "compiled" in pl["name"]:
            print(
                f"{pl['name']}: first step {pl['segments'][0]:.1f} s (compiling), then the "
                "median above; not a product setting"
            )
    if not args.compile:
        print("compile: not a product setting; --compile times it beside the others")

    if args.full_steps <= 0:
        return
    full = TrainConfig(**{**prof["train"], "device": "cpu", "max_steps": args.full_steps})
    game = Players()
    game.add(
        "reference (nanoGPT loop)",
        lambda turn: reference_loop(vc, full, sample, ds, turn),
        default_threads,
    )
    game.add("sweep Trainer, defaults", trainer_player(gpt, full, ds, sample), default_threads)
    players = game.run()
    short = "" if args.full_steps == 1000 else f" -- SHORTENED from 1000 to {args.full_steps} steps"
    print(
        f"\nTable 2: whole CPU-safe baseline, {args.full_steps} steps{short}; evals every "
        f"{full.eval_every} steps ({full.eval_iters} batches per split), a {sample.max_new_tokens}"
        f"-token sample at each eval; the two in turns, time = time holding the CPU\n"
    )
    head2 = f"{'run':<26}{'wall s':>9}{'vs ref':>8}{'s/step':>8}{'val loss':>10}"
    print(head2)
    print("-" * len(head2))
    ref_wall = None
    for pl in players:
        wall = sum(pl["segments"])
        ref_wall = ref_wall or wall
        print(
            f"{pl['name']:<26}{wall:>9.1f}{ref_wall / wall:>7.2f}x"
            f"{wall / args.full_steps:>8.2f}{pl['result']['final_val_loss']:>10.4f}"
        )


if __name__ == "__main__":
    main()
