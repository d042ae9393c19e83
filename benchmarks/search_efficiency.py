"""How many training steps does TPE + Hyperband need to match the full grid's best val loss?

A small space (dropout x n_layer x lr, 3x3x3 = 27 points) over a shape between the smoke
and the small profiles. The grid trains every point to max_steps. TPE (same points as
categorical choices, so the grid's best is reachable exactly) with Hyperband pruning runs
— and, like `sweep search`, without training again a point that already finished — until a trial's best val loss is within --tolerance of the grid's best (or --max-trials);
pruned trials count the steps they ran. The DESIGN budget: at most a third of the grid's
steps. Same data, same training seed for every trial; no MLflow (in-memory Optuna).

    python benchmarks/search_efficiency.py [--seeds 0,1,2] [--tolerance 0.005]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
from tabulate import tabulate

from model.data import Dataset, resolve_corpus
from model.train import Trainer, TrainerHooks
from orchestrator.config import build
from orchestrator.sweeps.search.objective import OptunaHooks
from orchestrator.sweeps.search.samplers import make_pruner

GRID = {"dropout": [0.0, 0.1, 0.2], "n_layer": [1, 2, 3], "lr": [3e-4, 1e-3, 3e-3]}
SHAPE = {
    "block_size": "32",
    "n_embed": "48",
    "n_head": "2",
    "batch_size": "16",
    "max_steps": "90",
    "eval_every": "10",
    "eval_iters": "4",
    "warmup_steps": "10",
    "max_new_tokens": "0",
}


class StepCounter(TrainerHooks):
    def __init__(self, inner: TrainerHooks | None = None):
        self.steps = 0
        self.inner = inner

    def on_step(self, step, loss, tokens_per_s):
        self.steps = step

    def on_eval(self, step, metrics):
        self.steps = step
        if self.inner:
            self.inner.on_eval(step, metrics)


def train(base, dataset, params, hooks) -> float:
    cfg = base.replace(**params)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg.gpt, cfg.train, dataset, out_dir=Path(tmp), hooks=hooks)
        return trainer.run()["best_val_loss"]


def run_grid(base, dataset):
    total, results = 0, {}
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        counter = StepCounter()
        results[values] = train(base, dataset, params, counter)
        total += counter.steps
    return total, results


def run_tpe(base, dataset, seed, target, max_trials, pruner=None):
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    pruner = pruner or make_pruner("hyperband", base)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    used = {"steps": 0}

    def objective(trial):
        params = {k: trial.suggest_categorical(k, v) for k, v in GRID.items()}
        # As `sweep search` does: params equal to a finished trial's are not trained again.
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.params == params:
                return t.value
        counter = StepCounter(OptunaHooks(trial, base.train.max_steps))
        try:
            return train(base, dataset, params, counter)
        finally:
            used["steps"] += counter.steps

    def stop_at_target(study, trial):
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.value <= target:
            study.stop()

    study.optimize(objective, n_trials=max_trials, callbacks=[stop_at_target])
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return study, used["steps"], pruned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="TPE sampler seeds, one run each")
    ap.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="relative: 0.005 = within 0.5%% of the grid's best",
    )
    ap.add_argument("--max-trials", type=int, default=40)
    ap.add_argument(
        "--data", default=None, help="corpus (default: shakespeare, shipped in the package)"
    )
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base = build("smoke", dict(SHAPE), data=args.data)
    dataset = Dataset(resolve_corpus(base.data))
    print(
        f"space: {' x '.join(f'{k} {v}' for k, v in GRID.items())}; {base.train.max_steps} steps per full trial; "
        f"corpus {dataset.corpus.name}",
        flush=True,
    )

    t0 = time.perf_counter()
    grid_steps, grid = run_grid(base, dataset)
    grid_best = min(grid.values())
    best_point = min(grid, key=grid.get)
    target = grid_best * (1 + args.tolerance)
    rows = [
        [
            "grid",
            len(grid),
            grid_steps,
            f"{grid_best:.4f}",
            "1.00",
            "-",
            f"{time.perf_counter() - t0:.0f}",
        ]
    ]
    print(
        f"grid best {grid_best:.4f} at {dict(zip(GRID, best_point, strict=True))}; target <= {target:.4f}",
        flush=True,
    )

    ratios = []
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        study, steps, pruned = run_tpe(base, dataset, seed, target, args.max_trials)
        best = study.best_value
        reached = best <= target
        ratios.append(steps / grid_steps if reached else float("inf"))
        rows.append(
            [
                f"tpe+hyperband seed={seed}",
                f"{len(study.trials)} ({pruned} pruned)",
                steps,
                f"{best:.4f}",
                f"{steps / grid_steps:.2f}",
                "yes" if reached else "NO",
                f"{time.perf_counter() - t0:.0f}",
            ]
        )
    print()
    print(
        tabulate(
            rows,
            headers=[
                "method",
                "trials",
                "total steps",
                "best val loss",
                "steps/grid steps",
                f"reached (<= +{args.tolerance:.1%})",
                "wall s",
            ],
            disable_numparse=True,
        )
    )
    finite = [r for r in ratios if r != float("inf")]
    verdict = (
        "within" if finite and len(finite) == len(ratios) and max(finite) <= 1 / 3 else "NOT within"
    )
    median = statistics.median(ratios) if ratios else float("nan")
    print(f"\nmedian steps/grid steps {median:.2f}; budget 0.33: {verdict} budget for every seed")


if __name__ == "__main__":
    main()
