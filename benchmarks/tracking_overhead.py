"""What MLflow logging costs: the same run with tracking on and off.

Tracking on = orchestrator.runner.train_run into a fresh SQLite store (params, dataset,
per-eval metrics, samples, best checkpoint, summary, run lifecycle). Tracking off = the
bare Trainer with the same config, hooks and sampling aside. Runs alternate (off, on, off,
on, ...) so drift on a shared machine hits both sides; medians and their ratio are printed.

    .venv/bin/python benchmarks/tracking_overhead.py [--repeats 5] [--steps 200]
Budget (DESIGN.md): logging costs at most 3% of a trial's wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def corpus_spec() -> str | None:
    shared = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
    return str(shared) if shared.is_file() else "pydoc"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=20)
    args = ap.parse_args()

    import torch

    from model.train import Trainer
    from orchestrator.config import build
    from orchestrator.progress import Progress
    from orchestrator.runner import load_dataset, train_run
    from orchestrator.tracking import Tracker

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = build("smoke", {"max_steps": str(args.steps), "eval_every": str(args.eval_every)}, data=corpus_spec())
    dataset = load_dataset(cfg.data)
    quiet = Progress(live=False, stream=open("/dev/null", "w"))  # noqa: SIM115

    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(f"sqlite:///{tmp}/mlflow.db", "overhead")  # store set up once, as in a sweep

        def off() -> float:
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                Trainer(cfg.gpt, cfg.train, dataset, out_dir=Path(out), sample_config=cfg.sample).run()
                return time.perf_counter() - t0

        def on() -> float:
            t0 = time.perf_counter()
            train_run(tracker, cfg, name="overhead", progress=quiet)
            return time.perf_counter() - t0

        off(), on()  # warm-up: first-call costs (allocator, kernels, SQLAlchemy) out of the medians
        offs, ons = [], []
        for _ in range(args.repeats):
            offs.append(off())
            ons.append(on())

    m_off, m_on = statistics.median(offs), statistics.median(ons)
    evals = args.steps // args.eval_every
    print(f"tracking overhead: smoke profile, {args.steps} steps, {evals} evals, {args.repeats} runs each (after 1 warm-up)")
    print(f"{'':<14}{'median wall s':>14}{'min':>8}{'max':>8}")
    print(f"{'tracking off':<14}{m_off:>14.3f}{min(offs):>8.3f}{max(offs):>8.3f}")
    print(f"{'tracking on':<14}{m_on:>14.3f}{min(ons):>8.3f}{max(ons):>8.3f}")
    overhead = (m_on / m_off - 1) * 100
    print(f"overhead: {overhead:+.1f}% of the run's wall time (budget: <= 3%) -> {'OK' if overhead <= 3 else 'OVER BUDGET'}")


if __name__ == "__main__":
    main()
