"""Where a training step's time goes: torch.profiler over a few steps of sweep's GPT at the
CPU-safe shape, the top operators by self CPU time, for one setting or before/after one change.

    python benchmarks/profile_step.py [--amp bf16|off] [--steps 3] [--threads N]
                                      [--compare-dropout] [--top 12]

--compare-dropout profiles the same steps twice, in turns: with nn.Dropout-style dropout
(F.dropout, SDPA with dropout_p: its unfused math path on a CPU) and with sweep's CPU path
(16-bit random masks, its own attention), and prints both tables and the step times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import model.gpt as gpt_module  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from model.train import configure_optimizer, cpu_has_native_bf16, resolve_amp  # noqa: E402


def step_fn(amp: str):
    torch.manual_seed(1)
    cfg = GPTConfig(n_layer=4, n_head=4, n_embed=256, block_size=128, dropout=0.1, vocab_size=65)
    m = GPT(cfg)
    opt = configure_optimizer(m, TrainConfig(), "cpu")
    dtype = resolve_amp(amp, "cpu")
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 65, (64, 128), generator=g)
    y = torch.randint(0, 65, (64, 128), generator=g)

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            _, loss = m(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def profiled(step, steps: int) -> tuple[object, float]:
    step()  # warm-up: allocator, oneDNN primitives
    times = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
    return prof, statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amp", default="bf16" if cpu_has_native_bf16() else "off")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--compare-dropout", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"$ python {' '.join(sys.argv)}\ntorch {torch.__version__}, {args.threads} threads, "
          f"amp={args.amp}, batch 64 x block 128, 4 x 256, dropout 0.1")  # fmt: skip
    runs = [("sweep's CPU dropout and attention", True)]
    if args.compare_dropout:
        runs.insert(0, ("F.dropout + SDPA(dropout_p) (nn.Dropout's path)", False))
    results = []
    for label, fast in runs:
        gpt_module.FAST_CPU_DROPOUT = fast
        prof, median = profiled(step_fn(args.amp), args.steps)
        results.append((label, median))
        print(f"\n== {label}: median step {median:.3f} s (under the profiler)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    gpt_module.FAST_CPU_DROPOUT = True
    if len(results) == 2:
        (_, ta), (_, tb) = results
        print(f"step time: {ta:.3f} s -> {tb:.3f} s ({(tb - ta) / ta:+.1%})")


if __name__ == "__main__":
    main()
