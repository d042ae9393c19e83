"""The GPU check: everything the CUDA path claims, in one device call of at most 8 minutes.

    python benchmarks/gpu_check.py [--out DIR] [--budget-s 450] [--data FILE] [--cpu-dry-run]

Sections, in this order, each skipped when the time left cannot hold it, each one's
failure printed and logged without stopping the others:

1. env: torch, the GPU, the bf16 matmul rate measured here;
2. tests: `pytest -m gpu tests/model` (the CUDA tests; model/ and torch only);
3. agree: a fused group of three (seed, dropout, lr differing) against each member trained
   alone by the Trainer (on CUDA: a fused group of one), at the smoke shape, fp32 and bf16:
   the largest difference of a per-eval val loss;
4. recipe: the 5000-step shakespeare-char recipe through the Trainer (evals every 250 steps
   of 200 batches a split, 400-token samples), end to end, compile time apart, best val;
5. steps: Table C of benchmarks/trainer.py at nanoGPT's shakespeare-char shape (plain loop
   eager, compiled, CUDA graphs; sweep's Trainer; fused K=1 eager and graphs only; fused
   K=8), ms a step, tokens/s, MFU;
6. fused: groups of K = 1, 2, 4, 8 at the shakespeare-char and mid-gpu shapes.

A short table comes last; logs and results.json go to --out (default $OUT, else
./gpu-check-out). Needs model/ and torch only (the device has no mlflow, optuna, typer)
and the corpus in .gpu-data/tinyshakespeare.txt (made by ../shared/gpu/prepare.sh), and
`pytest` for section 2. --cpu-dry-run runs every section on the CPU at tiny shapes (graphs
become eager, compiled stays compiled) to try the script before spending device time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import trainer as bench  # noqa: E402  (benchmarks/trainer.py)

from model.config import GPTConfig, SampleConfig, TrainConfig  # noqa: E402
from model.data import Dataset, resolve_corpus  # noqa: E402
from model.fused import FusedTrainer, Member, StepCache  # noqa: E402
from model.train import Trainer, TrainerHooks  # noqa: E402

# seconds each section is expected to take on an H200 (compiles included), to skip in time
COST = {"env": 10, "tests": 60, "agree": 60, "recipe": 90, "steps": 150, "fused": 90}
SPECS = [(1, 0.1, 1e-3), (2, 0.2, 2e-3), (3, 0.0, 5e-4)]  # seed, dropout, lr


class Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self):
        for s in self.streams:
            s.flush()


class Evals(TrainerHooks):
    def __init__(self):
        self.vals = []

    def on_eval(self, step, metrics):
        self.vals.append(metrics["val_loss"])


def section_env(ctx) -> dict:
    dev = ctx.device
    r = {"torch": torch.__version__, "device": bench.device_name(dev)}
    if dev == "cuda":
        r["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        r["bf16_tflops"] = bench.cuda_matmul_tflops(dev)
    print(json.dumps(r))
    return r


def section_tests(ctx) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/model/test_fused.py", "tests/model/test_train.py", "tests/model/test_gpt.py"]  # fmt: skip
    cmd += ["-m", "gpu"] if ctx.device == "cuda" else ["-k", "fused or masks or kv_cache"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=ctx.left() - 5)
    (ctx.out / "tests.log").write_text(p.stdout + p.stderr)
    tail = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"$ {' '.join(cmd[1:])}\nexit {p.returncode}: {tail}")
    return {"exit": p.returncode, "summary": tail}


def section_agree(ctx) -> dict:
    """Fused group vs each member alone, per-eval val losses."""
    smoke = {"block_size": 32, "n_layer": 2, "n_head": 2, "n_embed": 64}
    out = {}
    cache = StepCache()
    for amp in ("off", "bf16"):
        with tempfile.TemporaryDirectory() as d:
            ms, solo = [], []
            for seed, p, lr in SPECS:
                g = GPTConfig(**smoke, dropout=p)
                t = TrainConfig(max_steps=60, batch_size=16, lr=lr, warmup_steps=10, eval_every=20,
                                eval_iters=4, seed=seed, amp=amp, device=ctx.device)  # fmt: skip
                ms.append(
                    Member(g, t, Path(d) / f"f{seed}", Evals(), SampleConfig(max_new_tokens=40))
                )
            # a dry run compiles the CUDA path on the CPU (hash masks, vectorised AdamW, no
            # graphs) and compares with groups of one, which is what the Trainer runs on CUDA
            kw = {"mode": "compile", "masks": "hash", "optimizer": "tensor"} if ctx.dry else {}
            t0 = time.perf_counter()
            fused = FusedTrainer(ms, ctx.ds, cache=cache, **kw)
            results = fused.run()
            t_fused = time.perf_counter() - t0
            t0 = time.perf_counter()
            for m in ms:
                h = Evals()
                where = m.out_dir.with_suffix(".solo")
                if ctx.dry:
                    FusedTrainer(
                        [replace(m, out_dir=where, hooks=h)], ctx.ds, cache=cache, **kw
                    ).run()
                else:
                    tr = Trainer(
                        m.gpt, m.train, ctx.ds, out_dir=where, hooks=h, sample_config=m.sample
                    )
                    tr.step_cache = cache
                    tr.run()
                solo.append(h.vals)
            t_solo = time.perf_counter() - t0
        errors = [str(r.error) for r in results if r.error is not None]
        diff = max(
            abs(a - b)
            for m, s in zip(ms, solo, strict=True)
            for a, b in zip(m.hooks.vals, s, strict=True)
        )
        out[amp] = {"max_abs_diff": diff, "errors": errors, "notes": fused.notes,
                    "fused_s": t_fused, "solo_s": t_solo}  # fmt: skip
        print(f"amp {amp}: largest |val loss fused - alone| over {len(SPECS)} members x 3 evals: "
              f"{diff:.2e}; errors {errors or 'none'}; notes {fused.notes or 'none'}; "
              f"fused {t_fused:.1f} s, alone {t_solo:.1f} s (compiles included)")  # fmt: skip
    return out


def shapes(ctx):
    """(gpt, cfg) at nanoGPT's shakespeare-char shape, or tiny on a dry run."""
    gpt, cfg = bench.nanogpt_shakespeare(ctx.device)
    if ctx.dry:
        gpt = replace(gpt, block_size=32, n_layer=2, n_head=2, n_embed=64)
        cfg = replace(cfg, batch_size=8, eval_iters=4, eval_every=20)
    return gpt, cfg


def section_steps(ctx) -> dict:
    gpt, cfg = shapes(ctx)
    steps = 10 if ctx.dry else 50
    rows = bench.cuda_table(ctx.ds, steps=steps, warmup=5 if ctx.dry else 15, gpt=gpt, cfg=cfg,
                            cache=ctx.cache)  # fmt: skip
    return {
        name: {"ms": ms, "tokens_per_s": tps, "mfu": mfu, "warmup_s": w}
        for name, ms, tps, mfu, w in rows
    }


def section_recipe(ctx) -> dict:
    gpt, cfg = shapes(ctx)
    steps = 60 if ctx.dry else 5000
    cfg = replace(cfg, max_steps=steps)
    r = bench.recipe(ctx.ds, steps, ctx.device, 40 if ctx.dry else 400, gpt, cfg, ctx.cache)
    print(f"{steps} steps, evals every {cfg.eval_every} ({cfg.eval_iters} batches a split), samples: "
          f"{r['wall_s']:.1f} s end to end, compile/capture {r['compile_s']:.1f} s, training steps "
          f"{r['train_s']:.1f} s; best val {r['best_val_loss']:.4f} at step {r['best_step']}; "
          f"{r['evals']} evals, {r['samples']} samples; peak {r['peak_mem_mb']:.0f} MB")  # fmt: skip
    return r


def section_fused(ctx) -> dict:
    """benchmarks/fused.py's CUDA table at the shakespeare-char and mid-gpu shapes."""
    import fused

    out = {}
    for shape in ("shakespeare", "mid-gpu"):
        if ctx.left() < 40:
            print(f"{shape}: skipped (out of time)")
            continue
        rows = fused.cuda_table(ctx.ds, shape, (1, 2, 4, 8), 10 if ctx.dry else 30, ctx.device,
                                ctx.cache, ctx.dry)  # fmt: skip
        out.update({f"{shape}: {k}": v for k, v in rows.items()})
    return out


class Context:
    def __init__(self, args):
        self.device = "cpu" if args.cpu_dry_run else "cuda"
        self.dry = args.cpu_dry_run
        self.out = Path(args.out or os.environ.get("OUT") or "gpu-check-out")
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0, self.budget = time.perf_counter(), args.budget_s
        self.ds = Dataset(resolve_corpus(args.data))
        self.cache = StepCache()

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)


def summary(ctx, res: dict) -> None:
    """The short table, last."""

    def get(*keys, fmt="{:.2f}"):
        v = res
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    steps = res.get("steps") or {}
    eager = (steps.get("nanoGPT loop, eager") or {}).get("tokens_per_s")
    k8 = (steps.get("fused K=8") or {}).get("tokens_per_s")
    rows = [
        ("CUDA tests", res.get("tests", {}).get("summary", "-"), "all pass"),
        ("fused vs alone, fp32, max |dval|", get("agree", "off", "max_abs_diff", fmt="{:.1e}"), "<= 1e-4"),
        ("fused vs alone, bf16, max |dval|", get("agree", "bf16", "max_abs_diff", fmt="{:.1e}"), "<= 1e-2"),
        ("nanoGPT loop eager, ms/step", get("steps", "nanoGPT loop, eager", "ms"), "(12.1 measured)"),
        ("sweep Trainer, ms/step", get("steps", "sweep Trainer", "ms"), "<= 4"),
        ("fused K=8, tokens/s", get("steps", "fused K=8", "tokens_per_s", fmt="{:,.0f}"), ">= 4.2M"),
        ("fused K=8 / one eager run", f"{k8 / eager:.2f}x" if k8 and eager else "-", ">= 3x"),
        ("recipe end to end, s", get("recipe", "wall_s", fmt="{:.1f}"), "<= 35"),
        ("  of which compile/capture, s", get("recipe", "compile_s", fmt="{:.1f}"), ""),
        ("recipe best val loss", get("recipe", "best_val_loss", fmt="{:.4f}"), "<= 1.47"),
    ]  # fmt: skip
    print(f"\n== GPU check summary ({res.get('env', {}).get('device', '?')}, "
          f"{time.perf_counter() - ctx.t0:.0f} s)")  # fmt: skip
    for name, value, target in rows:
        print(f"{name:<36}{value:>26}  {target}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--budget-s", type=float, default=450.0)
    p.add_argument("--data", default=str(ROOT / ".gpu-data" / "tinyshakespeare.txt"))
    p.add_argument("--cpu-dry-run", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated sections to run")
    args = p.parse_args()
    # one process compiles many variants of the same step function here (group sizes,
    # shapes, train and eval, fp32 and bf16); past dynamo's default limit of 8 a code object
    # would silently run eager. A sweep command meets a handful; this script, dozens.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    ctx = Context(args)
    log = (ctx.out / "gpu_check.log").open("w")
    sys.stdout = Tee(sys.__stdout__, log)
    print("$ python " + " ".join(sys.argv), flush=True)
    sections = {"env": section_env, "tests": section_tests, "agree": section_agree,
                "recipe": section_recipe, "steps": section_steps, "fused": section_fused}  # fmt: skip
    res = {}
    for name, fn in sections.items():
        if args.only and name not in args.only.split(","):
            continue
        need = COST[name] / (10 if ctx.dry else 1)
        if ctx.left() < need:
            print(f"\n== {name}: skipped ({ctx.left():.0f} s left, needs ~{need:.0f} s)")
            continue
        print(f"\n== {name} ({ctx.left():.0f} s left)", flush=True)
        t = time.perf_counter()
        try:
            res[name] = fn(ctx)
        except Exception as e:  # the next section still runs; the traceback is in the log
            (ctx.out / f"{name}.error.log").write_text(traceback.format_exc())
            print(
                f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            )
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"({name}: {time.perf_counter() - t:.0f} s)", flush=True)
        with contextlib.suppress(TypeError):
            (ctx.out / "results.json").write_text(json.dumps(res, indent=2, default=str))
    summary(ctx, res)
    sys.stdout = sys.__stdout__
    log.close()


if __name__ == "__main__":
    main()
