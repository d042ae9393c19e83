"""How fast the reading commands answer on a store of 200+ runs, each in a fresh process.

Builds an SQLite store the way sweeps leave it (a 3-seed baseline, and an ablation parent
with --runs children: full config params, per-eval val_loss history and summary metrics,
recorded through the Tracker without training them; --sweeps N spreads them over N
ablations of the same baseline, so the latest one's table reads the others as its history),
then times `sweep --help`,
`sweep list`, `sweep table` and `sweep best` as a user runs them: a new interpreter each
time, so imports count. Prints the median of --repeats runs of each.

    .venv/bin/python benchmarks/reading.py [--runs 200] [--repeats 5] [--sweeps 1]
Budgets (issue 11): `sweep --help` under 0.3 s; `sweep table` / `sweep best` under 2 s on a
store of 200 runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


KNOBS = ["lr", "dropout", "weight_decay", "grad_clip", "warmup_steps", "n_embed", "n_layer"]


def attach_tags(tracker, parent: str) -> None:
    """What closing the sweep records on its parent besides files (settings, the seeds and
    losses its table used), where this version of the code records them (`Table.tags`)."""
    from orchestrator.results.table import sweep_table

    table = sweep_table(tracker, tracker.get_run(parent))
    if hasattr(table, "tags"):
        tracker.set_tags(parent, table.tags())


def build_store(root: Path, n_runs: int, n_sweeps: int = 1) -> str:
    from orchestrator import tracking as T
    from orchestrator.config import build
    from orchestrator.tracking import Role, RunState

    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = T.Tracker(uri, "char-gpt")
    cfg = build("smoke", {})
    dataset = {"dataset.name": "shakespeare", "dataset.sha256": "0" * 64, "dataset.vocab_size": 65}
    rng = random.Random(0)

    def trained(name, parent, tags, seed, shift):
        flat = cfg.replace(seed=seed).to_flat()
        run = tracker.create_run(
            name,
            parent_id=parent,
            tags={**tags, T.TAG_SEED: str(seed), T.TAG_CONFIG_HASH: f"{shift:.3f}-{seed}"},
        )
        tracker.log_params(run, {**flat, **dataset})
        loss = 2.8 + shift + rng.gauss(0, 0.03)
        for step in (20, 40, 60):
            tracker.log_metrics(run, {"val_loss": loss + (60 - step) / 40}, step)
        summary = {"best_val_loss": loss, "best_val_ppl": 2.718**loss, "final_train_loss": loss,
                   "final_val_loss": loss, "best_step": 60, "wall_s": 1.0, "params": 106304,
                   "train_tokens_per_s": 40000.0}  # fmt: skip
        tracker.log_metrics(run, summary, 60)
        tracker.end_run(run, RunState.COMPLETE)

    base = tracker.create_run(
        "baseline",
        tags={T.TAG_ROLE: Role.BASELINE, T.TAG_SEEDS: "3", T.TAG_SEED_LIST: "1,2,3"},
    )
    tracker.log_params(base, {**cfg.to_flat(), **dataset})
    for s in (1, 2, 3):
        trained(f"baseline/seed={s}", base, {T.TAG_ROLE: Role.BASELINE_SEED}, s, 0.0)
    tracker.end_run(base, RunState.COMPLETE)
    per = -(-n_runs // n_sweeps)
    for j in range(n_sweeps):
        knob = KNOBS[j % len(KNOBS)] + ("" if j < len(KNOBS) else f"-{j}")
        parent = tracker.create_run(
            f"ablate:{knob}",
            tags={T.TAG_ROLE: Role.ABLATION, T.TAG_KNOB: knob, T.TAG_BASELINE: base},
        )
        for i in range(j * per, min(n_runs, (j + 1) * per)):
            value, seed = i // 3, i % 3 + 1
            tags = {T.TAG_ROLE: Role.ABLATION_RUN, T.TAG_KNOB: knob, T.TAG_VALUE: str(value)}
            trained(f"{knob}={value}/seed={seed}", parent, tags, seed, value / 1000)
        tracker.end_run(parent, RunState.COMPLETE)
        attach_tags(tracker, parent)
    return uri


def table_queries(uri: str, repeats: int) -> tuple[dict[str, int], float]:
    """The store calls one `sweep table` of the latest sweep makes (counted in-process on the
    Tracker), and the median seconds of building that table in-process."""
    from collections import Counter

    from orchestrator import tracking as T
    from orchestrator.results.table import sweep_table

    tracker = T.Tracker(uri, "char-gpt", create=False)
    counts: Counter[str] = Counter()
    for name in ("search", "get_run", "metric_history"):

        def counted(*a, _fn=getattr(tracker, name), _name=name, **k):
            counts[_name] += 1
            return _fn(*a, **k)

        setattr(tracker, name, counted)
    parent = T.find_sweep(tracker)
    times = []
    for _ in range(repeats):
        counts.clear()
        t0 = time.perf_counter()
        sweep_table(tracker, parent)
        times.append(time.perf_counter() - t0)
    return dict(counts), statistics.median(times)


def timed(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    # the `sweep` script beside this interpreter (with PYTHONPATH set, another checkout's code)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "sweep"), *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"sweep {' '.join(args)} failed: {out.stderr.strip()}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweeps", type=int, default=1, help="ablations the runs are spread over")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        uri = build_store(Path(tmp), args.runs, args.sweeps)
        print(
            f"store: {args.runs + 3} trained runs + {args.sweeps + 1} parents, built in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        calls, inproc = table_queries(uri, args.repeats)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        commands = [("--help", 0.3), ("list", None), ("table", 2.0), ("best", 2.0)]
        rows = []
        for cmd, budget in commands:
            times = [timed(cmd.split(), env) for _ in range(args.repeats)]
            med = statistics.median(times)
            verdict = "" if budget is None else ("within" if med <= budget else "OVER")
            rows.append((f"sweep {cmd}", med, min(times), budget, verdict))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\n{'command':<14} {'median s':>9} {'min s':>7} {'budget s':>9}  ")
    for name, med, low, budget, verdict in rows:
        b = "" if budget is None else f"{budget:.1f}"
        print(f"{name:<14} {med:>9.2f} {low:>7.2f} {b:>9}  {verdict}")
    print(
        f"\n`sweep table` in-process: {inproc:.2f} s median; store calls: "
        + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
    )
    print(f"\n{' '.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
