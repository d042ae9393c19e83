"""What MLflow logging costs: the same run with tracking on and off.

Tracking on = orchestrator.execution.runner.train into a fresh SQLite store (params, dataset,
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


def instrument(cls) -> dict[str, float]:
    """Wrap the Tracker's store calls to add up the time spent in them (main thread)."""
    import functools

    spent: dict[str, float] = {}
    for name in (
        "create_run",
        "end_run",
        "set_tags",
        "log_params",
        "log_metrics",
        "log_artifacts",
        "log_dataset",
        "flush",
    ):
        fn = getattr(cls, name)

        @functools.wraps(fn)
        def timed(*a, _fn=fn, _name=name, **k):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t0

        setattr(cls, name, timed)
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=20)
    args = ap.parse_args()

    import torch

    from model.train import Trainer
    from orchestrator.config import build
    from orchestrator.execution.env import RunEnv
    from orchestrator.execution.runner import train
    from orchestrator.execution.spec import RunSpec
    from orchestrator.progress import Progress
    from orchestrator.tracking import Tracker

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = build(
        "smoke",
        {"max_steps": str(args.steps), "eval_every": str(args.eval_every)},
        data=corpus_spec(),
    )
    quiet = Progress(live=False, stream=open("/dev/null", "w"))  # noqa: SIM115

    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(f"sqlite:///{tmp}/mlflow.db", "overhead")  # set up once, as in a sweep
        env = RunEnv(tracker, quiet)
        dataset = env.dataset(cfg.data)

        def off() -> float:
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                Trainer(
                    cfg.gpt, cfg.train, dataset, out_dir=Path(out), sample_config=cfg.sample
                ).run()
                return time.perf_counter() - t0

        def on() -> float:
            t0 = time.perf_counter()
            run_id = tracker.create_run("overhead")  # what the sweep does before training
            train(env, RunSpec(cfg, "overhead", run_id=run_id))
            return time.perf_counter() - t0

        off(), on()  # warm-up: first-call costs (allocator, kernels, SQLAlchemy) out of the medians
        in_calls = instrument(Tracker)  # seconds spent inside the Tracker's MLflow calls
        offs, ons, calls = [], [], []
        for _ in range(args.repeats):
            offs.append(off())
            before = sum(in_calls.values())
            ons.append(on())
            calls.append(sum(in_calls.values()) - before)

    m_off, m_on = statistics.median(offs), statistics.median(ons)
    ratio = statistics.median(b / a for a, b in zip(offs, ons, strict=True))
    evals = args.steps // args.eval_every
    print(
        f"tracking overhead: smoke profile, {args.steps} steps, {evals} evals, {args.repeats} pairs (after 1 warm-up)"
    )
    print(f"{'':<26}{'median s':>10}{'min':>8}{'max':>8}")
    print(f"{'tracking off':<26}{m_off:>10.3f}{min(offs):>8.3f}{max(offs):>8.3f}")
    print(f"{'tracking on':<26}{m_on:>10.3f}{min(ons):>8.3f}{max(ons):>8.3f}")
    print(
        f"{'  of which in MLflow calls':<26}{statistics.median(calls):>10.3f}{min(calls):>8.3f}{max(calls):>8.3f}"
    )
    overhead = (ratio - 1) * 100
    direct = 100 * statistics.median(c / w for c, w in zip(calls, ons, strict=True))
    print(
        f"median of paired on/off ratios: {overhead:+.1f}% (wall clock, includes the machine's noise)"
    )
    print(
        f"time inside MLflow calls: {direct:.1f}% of the tracked run's wall time (metric writes run on a writer thread)"
    )
    verdict = "OK" if max(overhead, direct) <= 3 else "OVER BUDGET"
    print(f"budget: logging <= 3% of a trial's wall time -> {verdict}")


if __name__ == "__main__":
    main()
