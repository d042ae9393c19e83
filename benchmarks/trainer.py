"""Trainer throughput at the course's CPU-safe shape: fp32 vs bf16 autocast.

Runs the real Trainer (CPU), times each optimizer step through the on_step hook, and
reports the median tokens/s after warm-up steps, the val loss after the same steps for
both precisions, and the achieved fraction of a matmul peak measured in this process.

    python benchmarks/trainer.py [--steps 10] [--warmup 2] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import Dataset, resolve_corpus  # noqa: E402
from model.gpt import GPTConfig  # noqa: E402
from model.train import TrainConfig, Trainer, TrainerHooks  # noqa: E402


class StepTimer(TrainerHooks):
    def __init__(self):
        self.times = []

    def on_step(self, step, loss, tokens_per_s):
        self.times.append(time.perf_counter())


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def bench(gpt: GPTConfig, cfg: TrainConfig, ds: Dataset, warmup: int) -> dict:
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as d:
        t = Trainer(gpt, cfg, ds, out_dir=Path(d), hooks=timer)
        s = t.run()
    # step i's duration: between consecutive on_step calls (skips the first step entirely)
    dts = [b - a for a, b in zip(timer.times, timer.times[1:], strict=False)][warmup:]
    tok = cfg.batch_size * gpt.block_size
    n = t.model.num_params()
    return {
        "tokens_per_s": tok / statistics.median(dts),
        "val_loss": s["final_val_loss"],
        "flops_per_token": 6 * n + 12 * gpt.n_layer * gpt.n_embed * gpt.block_size,
        "params": s["params"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--eval-iters", type=int, default=8)
    p.add_argument("--profile", default=str(ROOT / "experiments/cpu-safe.toml"))
    p.add_argument("--data", default=None, help="corpus: shakespeare, pydoc or a file")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    corpus = resolve_corpus(args.data)
    if corpus.notice:
        print(corpus.notice, file=sys.stderr)
    ds = Dataset(corpus)
    prof = tomllib.loads(Path(args.profile).read_text())
    gpt = GPTConfig(**prof["model"])
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

    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    rows = {}
    for name, amp in (("fp32", "off"), ("bf16", "bf16")):
        rows[name] = bench(gpt, TrainConfig(**{**base.__dict__, "amp": amp}), ds, args.warmup)

    print(
        f"corpus {corpus.name}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"batch {base.batch_size} x block {gpt.block_size}, n_layer {gpt.n_layer}, "
        f"n_embed {gpt.n_embed}, n_head {gpt.n_head}, dropout {gpt.dropout}, "
        f"{rows['fp32']['params'] / 1e6:.2f}M params"
    )
    print(
        f"median of {args.steps} steps after {args.warmup} warm-up; "
        f"val loss after {steps} steps, {args.eval_iters} eval batches, same seed\n"
    )
    print(
        f"{'precision':<10}{'tokens/s':>10}{'vs fp32':>9}{'val loss':>10}"
        f"{'model GFLOP/s':>15}{'matmul GFLOP/s':>16}{'of peak':>9}"
    )
    for name, r in rows.items():
        model_gflops = r["flops_per_token"] * r["tokens_per_s"] / 1e9
        print(
            f"{name:<10}{r['tokens_per_s']:>10,.0f}"
            f"{r['tokens_per_s'] / rows['fp32']['tokens_per_s']:>8.2f}x"
            f"{r['val_loss']:>10.4f}{model_gflops:>15.1f}{peak[name]:>16.1f}"
            f"{model_gflops / peak[name]:>9.1%}"
        )
    print(f"\nval loss bf16 - fp32: {rows['bf16']['val_loss'] - rows['fp32']['val_loss']:+.4f}")


if __name__ == "__main__":
    main()
