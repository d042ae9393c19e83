"""Record a baseline: one run, or a parent with one child per seed."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from . import tracking as T
from .config import RunConfig, from_flat
from .errors import UserError
from .progress import Progress
from .runner import Outcome, load_dataset, parent_run, pin_corpus, run_params, train_run


@dataclass
class BaselineResult:
    run_id: str
    outcomes: list[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.state == "complete" for o in self.outcomes)


def seed_list(cfg: RunConfig, seeds: int) -> list[int]:
    return [cfg.train.seed + i for i in range(seeds)]


def record_baseline(
    tracker: T.Tracker, cfg: RunConfig, seeds: int = 1, progress: Progress | None = None
) -> BaselineResult:
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    progress = progress or Progress(live=False)
    dataset = load_dataset(cfg.data, progress)
    cfg = pin_corpus(cfg, dataset)
    seed_values = seed_list(cfg, seeds)
    tags = {
        T.TAG_ROLE: "baseline",
        "sweep.seeds": str(seeds),
        "sweep.seed_list": ",".join(map(str, seed_values)),
    }
    if seeds == 1:
        progress.sweep(1)
        out = train_run(tracker, cfg, name="baseline", tags=tags, progress=progress)
        return BaselineResult(out.run_id, [out])

    parent = tracker.create_run("baseline", tags={**tags, T.TAG_CONFIG_HASH: cfg.config_hash()})
    tracker.log_params(parent, run_params(cfg, dataset.identity()))
    progress.sweep(seeds)
    outcomes: list[Outcome] = []
    with parent_run(tracker, parent):
        for s in seed_values:
            child_cfg = cfg.replace(seed=s)
            outcomes.append(
                train_run(
                    tracker,
                    child_cfg,
                    name=f"baseline/seed={s}",
                    parent_id=parent,
                    tags={T.TAG_ROLE: "baseline-seed"},
                    progress=progress,
                )
            )
    losses = [o.summary["best_val_loss"] for o in outcomes if o.state == "complete"]
    if losses:
        summary = {
            "best_val_loss": statistics.fmean(losses),
            "best_val_loss_std": statistics.stdev(losses) if len(losses) > 1 else 0.0,
            "best_val_ppl": statistics.fmean(
                o.summary["best_val_ppl"] for o in outcomes if o.state == "complete"
            ),
        }
        tracker.log_metrics(parent, {k: v for k, v in summary.items() if math.isfinite(v)}, 0)
    failed = [o for o in outcomes if o.state != "complete"]
    if failed:
        tracker.end_run(
            parent, "FAILED", "failed", f"{len(failed)} of {seeds} seeds failed: {failed[0].reason}"
        )
    else:
        tracker.end_run(parent, "FINISHED", "complete")
    return BaselineResult(parent, outcomes)


def baseline_config(run: T.RunInfo) -> RunConfig:
    """The config recorded with a baseline run (never re-read from a profile)."""
    from .config import DATA_KEY, FIELDS

    flat = {k: v for k, v in run.params.items() if k in FIELDS or k == DATA_KEY}
    try:
        return from_flat(flat)
    except Exception as e:  # a store written by another version of the tool
        raise UserError(
            f"baseline {run.run_id} has a config this version cannot read: {e}"
        ) from None


def baseline_seeds(run: T.RunInfo) -> list[int]:
    raw = run.tags.get("sweep.seed_list")
    if raw:
        return [int(s) for s in raw.split(",")]
    return [int(run.params.get("seed", "1"))]
