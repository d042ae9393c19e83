"""Fused groups against solo runs one after another: aggregate training tokens/s, in one run.

For each shape and K: a fused group of K members (model.fused.FusedTrainer, members
differing in seed, dropout and lr as an ablation's do) against solo runs
(model.train.Trainer), stepped in turns (one step each, round robin, as
benchmarks/trainer.py does) so a loaded machine slows them alike. K solo runs one after
another take K times one solo run's steps, so their aggregate tokens/s is one solo run's;
a group's is K x its batch tokens / its step time. Median of the timed steps. Then the
peak memory per member (each setting in a child process: its peak RSS above the loaded
data, divided by K; CUDA: max_memory_allocated / K; "marginal": what each member past the
first adds, (peak K - peak 1) / (K - 1), without the process's fixed costs) beside the estimate
`plan_groups` uses, and what `plan_groups(fuse="auto")` picks for the shape.

    python benchmarks/fused.py [--shapes smoke,cpu-safe] [--ks 1,2,4,8] [--steps 8]
                               [--warmup 2] [--threads 0] [--device cpu|cuda] [--data FILE]
    python benchmarks/fused.py --whole 8 [--whole-steps 300] [--rounds 2]

--whole N: N whole smoke-profile runs (evals, samples, checkpoints; seeds 1..N) trained one
after another by the Trainer against one fused group, in alternating rounds: the model's
side of `sweep baseline --profile smoke --set max_steps=300 --seeds 8` fused vs --fuse off
(the command adds MLflow logging to both).

Shapes: smoke and cpu-safe (experiments/*.toml), s2 and s10 (between them: ~2 and ~10
GFLOP a member step, where the CPU rule of model/fused/plan.py is drawn), shakespeare
(nanoGPT's shakespeare-char: 6x384, 6 heads, block 256, batch 64, dropout 0.2) and
mid-gpu (experiments/mid-gpu.toml) for CUDA (--device cuda --shapes shakespeare,mid-gpu):
there runs go one at a time (the GPU is the process's own), beside a plain nanoGPT loop
(benchmarks/trainer.py's reference model) eager and compiled, each timed after its first
10 steps (compiling, capturing), bf16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import trainer as bench  # noqa: E402  (benchmarks/trainer.py)
from trainer import Players, TurnHook  # noqa: E402

from model.config import GPTConfig, SampleConfig, TrainConfig  # noqa: E402
from model.data import Dataset, resolve_corpus  # noqa: E402
from model.fused import FusedTrainer, Member, plan_groups, step_flops  # noqa: E402
from model.fused.plan import member_bytes  # noqa: E402
from model.train import Trainer, resolve_amp, resolve_device  # noqa: E402


def profile(name: str) -> tuple[dict, dict]:
    p = tomllib.loads((ROOT / "experiments" / f"{name}.toml").read_text())
    return p["model"], p["train"]


SHAPES = {
    "smoke": lambda: profile("smoke"),
    "s2": lambda: ({"block_size": 64, "n_layer": 2, "n_head": 4, "n_embed": 128, "dropout": 0.1},
                   {"batch_size": 16}),
    "s10": lambda: ({"block_size": 128, "n_layer": 4, "n_head": 4, "n_embed": 128, "dropout": 0.1},
                    {"batch_size": 16}),
    "cpu-safe": lambda: profile("cpu-safe"),
    "shakespeare": lambda: ({"block_size": 256, "n_layer": 6, "n_head": 6, "n_embed": 384,
                             "dropout": 0.2, "bias": False},
                            {"batch_size": 64, "lr": 1e-3, "beta2": 0.99, "weight_decay": 0.1}),
    "mid-gpu": lambda: profile("mid-gpu"),
}  # fmt: skip
# the members of a group differ as an ablation's runs do: seed, dropout, lr
VARIANTS = [(1, 0.0, 1.0), (2, 0.05, 0.5), (3, -0.05, 2.0), (4, 0.0, 0.7)]


def configs(shape: str, steps: int, device: str, threads: int, amp: str):
    model, train = SHAPES[shape]()
    gpt = GPTConfig(**model)
    train = {k: v for k, v in train.items() if k not in ("device", "max_steps", "eval_every")}
    cfg = TrainConfig(**{**train, "device": device, "max_steps": steps, "eval_every": steps,
                         "eval_iters": 1, "threads": threads, "amp": amp})  # fmt: skip
    return gpt, cfg


def member(gpt: GPTConfig, cfg: TrainConfig, k: int, out: Path) -> Member:
    seed, dp, lr = VARIANTS[k % len(VARIANTS)]
    g = replace(gpt, dropout=min(0.5, max(0.0, gpt.dropout + dp)))
    return Member(g, replace(cfg, seed=seed + 10 * k, lr=cfg.lr * lr), out / f"m{k}")


def fused_player(gpt, cfg, ds, K: int, mode: str | None):
    def fn(turn):
        with tempfile.TemporaryDirectory() as d:
            ms = [member(gpt, cfg, k, Path(d)) for k in range(K)]
            ms[0].hooks = TurnHook(turn, cfg.max_steps)
            results = FusedTrainer(ms, ds, mode=mode).run()
            return results[0].summary

    return fn


def solo_player(gpt, cfg, ds):
    def fn(turn):
        with tempfile.TemporaryDirectory() as d:
            return Trainer(gpt, cfg, ds, out_dir=Path(d), hooks=TurnHook(turn, cfg.max_steps)).run()

    return fn


def proc_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_memory(args) -> None:
    """--child SHAPE K (K -1: one solo Trainer): print the memory 2 steps of it took above
    the loaded data (CPU: the peak RSS after resetting it through /proc/self/clear_refs;
    CUDA: max_memory_allocated)."""
    shape, K = args.child[0], int(args.child[1])
    ds = Dataset(resolve_corpus(args.data))
    gpt, cfg = configs(shape, 2, args.device, args.threads, args.amp)
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS starts again from here
    base = proc_kb("VmRSS")
    with tempfile.TemporaryDirectory() as d:
        if K == -1:
            Trainer(gpt, cfg, ds, out_dir=Path(d)).run()
        else:
            FusedTrainer([member(gpt, cfg, k, Path(d)) for k in range(K)], ds).run()
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (proc_kb("VmHWM") - base) / 1024
    print(json.dumps({"peak_mb": peak}))


def peak_mb(args, shape: str, K: int) -> float:
    cmd = [sys.executable, __file__, "--child", shape, str(K), "--device", args.device,
           "--threads", str(args.threads), "--amp", args.amp]  # fmt: skip
    if args.data:
        cmd += ["--data", args.data]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def table(args, ds, shape: str, ks: list[int]) -> None:
    steps = args.warmup + args.steps + 1
    gpt, cfg = configs(shape, steps, args.device, args.threads, args.amp)
    vc = replace(gpt, vocab_size=ds.tokenizer.vocab_size)
    tok = cfg.batch_size * gpt.block_size
    game = Players()
    threads = torch.get_num_threads() if args.threads == 0 else args.threads
    game.add("solo (Trainer)", solo_player(gpt, cfg, ds), threads)
    for K in ks:
        game.add(f"fused K={K}", fused_player(gpt, cfg, ds, K, args.mode), threads)
    t0 = time.perf_counter()
    players = game.run()
    device = resolve_device(cfg.device)
    amp = resolve_amp(cfg.amp, device)
    print(
        f"\n== {shape}: {gpt.n_layer}x{gpt.n_embed}, {gpt.n_head} heads, block {gpt.block_size}, "
        f"batch {cfg.batch_size}, dropout {gpt.dropout}; {step_flops(vc, cfg) / 1e9:.2f} GFLOP a "
        f"member step; {device}, {str(amp or 'fp32').replace('torch.', '')}, {threads} threads; "
        f"median of {args.steps} steps after {args.warmup}, in turns ({time.perf_counter() - t0:.0f} s)"
    )
    if not args.no_memory:
        mem = {K: peak_mb(args, shape, K) / K for K in ks}
        mem["solo"] = peak_mb(args, shape, -1)
    head = (f"{'setting':<16}{'ms/step':>9}{'tokens/s':>11}{'vs solo':>9}{'MB/member':>11}"
            f"{'marginal':>10}{'est. MB':>9}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    solo_tps = None
    for pl in players:
        med = statistics.median(pl["segments"][args.warmup + 1 : args.warmup + 1 + args.steps])
        K = int(pl["name"].split("=")[1]) if "=" in pl["name"] else 1
        tps = K * tok / med
        solo_tps = solo_tps or tps
        m = ""
        if not args.no_memory:
            total = mem["solo"] if "=" not in pl["name"] else mem[K] * K
            extra = (
                (mem[K] * K - mem[1]) / (K - 1)
                if "=" in pl["name"] and K > 1 and 1 in mem
                else None
            )
            m = f"{total / K:>11.1f}" + (f"{extra:>10.1f}" if extra is not None else f"{'':>10}")
        est = member_bytes(vc, cfg) / 2**20
        print(
            f"{pl['name']:<16}{med * 1e3:>9.1f}{tps:>11,.0f}{tps / solo_tps:>8.2f}x{m}{est:>9.0f}"
        )
    auto = plan_groups(8, device, vc, cfg, fuse="auto")
    print(f"plan_groups(8 runs, fuse='auto') here: {auto}")


def cuda_table(ds, shape: str, ks, steps: int = 30, device: str = "cuda", cache=None, dry=False):
    """On CUDA (no turns: the GPU is the process's own): a plain nanoGPT loop eager and
    compiled (benchmarks/trainer.py), then fused groups of K (K=1: the Trainer, on CUDA a
    group of one), each timed from the end of its first 10 steps; aggregate tokens/s
    against K runs of the Trainer one after another and against the eager loop."""
    gpt, cfg = configs(shape, steps, device, 0, "bf16")
    if dry:  # --cpu-dry-run of benchmarks/gpu_check.py: tiny, on the CPU
        gpt = replace(gpt, block_size=32, n_layer=2, n_head=2, n_embed=64)
        cfg = replace(cfg, batch_size=8)
    tok = cfg.batch_size * gpt.block_size
    print(f"\n== {shape}: {gpt.n_layer}x{gpt.n_embed}, {gpt.n_head} heads, block {gpt.block_size}, "
          f"batch {cfg.batch_size}, dropout {gpt.dropout}, bf16, {bench.device_name(device)}")  # fmt: skip
    head = f"{'setting':<24}{'ms/step':>9}{'tokens/s':>13}{'vs solo':>9}{'vs eager':>9}{'MB/member':>11}"
    print(head + "\n" + "-" * len(head), flush=True)
    rows, solo, eager = {}, None, None
    settings = [("nanoGPT loop, eager", None), ("nanoGPT loop, compiled", "default")]
    settings += [(f"fused K={K}" if K > 1 else "sweep Trainer (K=1)", K) for K in ks]
    for name, what in settings:
        try:
            if isinstance(what, int):
                r = bench.sweep_cuda_ms(gpt, cfg, ds, what, None if device == "cuda" else "eager",
                                        steps, cache)  # fmt: skip
                ms, K, mb = r["ms"], what, r["peak_mb"]
            else:
                ms, _ = bench.plain_cuda_ms(gpt, cfg, ds, what, steps, 10)
                K, mb = 1, float("nan")
        except Exception as e:  # a row that cannot run says why; the others still do
            print(
                f"{name:<24}failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}", flush=True
            )
            continue
        tps = K * tok / (ms / 1e3)
        eager = eager or tps
        if isinstance(what, int) and solo is None:
            solo = tps if what == 1 else None
        ratio = f"{tps / solo:>8.2f}x" if solo and isinstance(what, int) else f"{'':>9}"
        rows[name] = {"ms": ms, "tokens_per_s": tps, "peak_mb": mb}
        print(
            f"{name:<24}{ms:>9.2f}{tps:>13,.0f}{ratio}{tps / eager:>8.2f}x"
            + (f"{mb:>11.0f}" if mb == mb else f"{'-':>11}"),  # nan: not measured
            flush=True,
        )
    return rows


def whole_runs(args, ds) -> None:
    """--whole N: N whole runs of the smoke profile (--whole-steps steps, its evals, samples
    and checkpoints, seeds 1..N) as one fused group against one after another, alternating
    the two --rounds times; wall time of each side."""
    prof = tomllib.loads((ROOT / "experiments/smoke.toml").read_text())
    gpt = GPTConfig(**prof["model"])
    cfg = TrainConfig(**{**prof["train"], "max_steps": args.whole_steps, "threads": args.threads})
    sample = SampleConfig(**prof["sample"])
    times = {"one after another": [], f"fused group of {args.whole}": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            for seed in range(1, args.whole + 1):
                Trainer(gpt, replace(cfg, seed=seed), ds, out_dir=Path(d) / f"s{seed}",
                        sample_config=sample).run()  # fmt: skip
            times["one after another"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ms = [Member(gpt, replace(cfg, seed=seed), Path(d) / f"f{seed}", None, sample)
                  for seed in range(1, args.whole + 1)]  # fmt: skip
            results = FusedTrainer(ms, ds).run()
            assert all(r.ok for r in results)
            times[f"fused group of {args.whole}"].append(time.perf_counter() - t0)
    print(f"\n== {args.whole} whole smoke runs of {args.whole_steps} steps (evals every "
          f"{cfg.eval_every}, {sample.max_new_tokens}-token samples, checkpoints), "
          f"{args.rounds} rounds alternating; wall s")  # fmt: skip
    base = statistics.median(times["one after another"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{name:<22}{med:>8.1f} s  {base / med:>5.2f}x   rounds: {', '.join(f'{t:.1f}' for t in ts)}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="smoke,cpu-safe")
    p.add_argument("--ks", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="0 = auto (resolve_threads)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="auto")
    p.add_argument("--mode", default=None, help="fused step mode (model.fused.MODES)")
    p.add_argument("--data", default=None)
    p.add_argument("--no-memory", action="store_true", help="skip the per-member memory")
    p.add_argument("--whole", type=int, default=0, help="N whole smoke runs, fused vs not")
    p.add_argument("--whole-steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child_memory(args)
        return
    print("$ python " + " ".join(sys.argv), flush=True)
    ds = Dataset(resolve_corpus(args.data))
    print(f"torch {torch.__version__}; corpus {ds.corpus.name}")
    if args.whole:
        whole_runs(args, ds)
        return
    for shape in args.shapes.split(","):
        ks = [int(k) for k in args.ks.split(",")]
        if args.device == "cuda":
            cuda_table(ds, shape, ks, args.steps * 4)
        else:
            table(args, ds, shape, ks)


if __name__ == "__main__":
    main()
