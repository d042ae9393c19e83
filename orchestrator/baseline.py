"""Record a baseline: one run, or a parent with one child per seed."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from . import tracking as T
from .config import RunConfig, from_flat, is_config_key
from .errors import UserError
from .estimate import say_estimate
from .progress import Progress
from .runner import Outcome, Runner, parent_run, run_params
from .tracking import Role, RunState


@dataclass
class BaselineResult:
    run_id: str
    outcomes: list[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.state is RunState.COMPLETE for o in self.outcomes)


def precision_note(tracker: T.Tracker, baseline: T.RunInfo, base: RunConfig) -> str | None:
    """A warning when the precision the baseline trained in (recorded per run) is not what
    its config resolves to on this machine (amp=auto: bf16 on CPUs with native bf16, fp32
    elsewhere): its variants would differ from it in precision as well as in what is swept."""
    from model.train import resolve_amp, resolve_device

    try:
        dtype = resolve_amp(base.train.amp, resolve_device(base.train.device))
    except Exception:  # the trainer refuses such a config with its own message
        return None
    here = str(dtype).replace("torch.", "") if dtype else "fp32"
    recorded = sorted(
        {m.tags[T.TAG_AMP] for m in T.baseline_members(tracker, baseline) if T.TAG_AMP in m.tags}
    )
    if not recorded or recorded == [here]:
        return None
    return (
        f"the baseline trained in {'/'.join(recorded)} (amp={base.train.amp} on its machine); "
        f"here amp={base.train.amp} means {here}, so its variants would differ from it in "
        f"precision too: record a baseline here, or one with --set amp=off (or bf16)"
    )


def seed_list(first: int, seeds: int) -> list[int]:
    """Seeds first, first+1, ...: ablations and confirmations reuse the baseline's list."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    return [first + i for i in range(seeds)]


def comparison_seeds(baseline: T.RunInfo, base: RunConfig, seeds: int | None) -> list[int]:
    """The seeds a sweep against `baseline` trains: the baseline's own (paired comparisons),
    or `--seeds N` from the seed of its config `base` on."""
    return T.baseline_seeds(baseline) if seeds is None else seed_list(base.train.seed, seeds)


def record_baseline(
    tracker: T.Tracker, cfg: RunConfig, seeds: int = 1, progress: Progress | None = None
) -> BaselineResult:
    seed_values = seed_list(cfg.train.seed, seeds)
    runner = Runner(tracker, progress)
    cfg = runner.check(cfg)  # a bad config is refused before anything is recorded
    say_estimate(runner, cfg, seeds)
    tags = {
        T.TAG_ROLE: Role.BASELINE,
        T.TAG_SEEDS: str(seeds),
        T.TAG_SEED_LIST: ",".join(map(str, seed_values)),
    }
    if seeds == 1:
        runner.progress.sweep(1)
        out = runner.train(cfg, "baseline", tags=tags)
        return BaselineResult(out.run_id, [out])

    parent = tracker.create_run("baseline", tags={**tags, T.TAG_CONFIG_HASH: cfg.config_hash()})
    tracker.log_params(parent, run_params(cfg, runner.dataset(cfg.data).identity()))
    runner.progress.sweep(seeds)
    outcomes: list[Outcome] = []
    with parent_run(tracker, parent):
        for s in seed_values:
            outcomes.append(
                runner.train(
                    cfg.replace(seed=s),
                    f"baseline/seed={s}",
                    parent_id=parent,
                    tags={T.TAG_ROLE: Role.BASELINE_SEED},
                )
            )
    done = [o for o in outcomes if o.state is RunState.COMPLETE]
    if done:
        losses = [o.summary["best_val_loss"] for o in done]
        summary = {
            "best_val_loss": statistics.fmean(losses),
            "best_val_loss_std": statistics.stdev(losses) if len(losses) > 1 else 0.0,
            "best_val_ppl": statistics.fmean(o.summary["best_val_ppl"] for o in done),
        }
        tracker.log_metrics(parent, {k: v for k, v in summary.items() if math.isfinite(v)}, 0)
    failed = [o for o in outcomes if o.state is not RunState.COMPLETE]
    if failed:
        reason = f"{len(failed)} of {seeds} seeds failed: {failed[0].reason}"
        tracker.end_run(parent, RunState.FAILED, reason)
    else:
        tracker.end_run(parent, RunState.COMPLETE)
    return BaselineResult(parent, outcomes)


def baseline_config(run: T.RunInfo) -> RunConfig:
    """The config recorded with a baseline run (never re-read from a profile)."""
    flat = {k: v for k, v in run.params.items() if is_config_key(k)}
    try:
        return from_flat(flat)
    except Exception as e:  # a store written by another version of the tool
        raise UserError(
            f"baseline {run.run_id} has a config this version cannot read: {e}"
        ) from None


def add_seed(runner: Runner, baseline: T.RunInfo, seed: int) -> Outcome:
    """Train one more seed of a seeded baseline (a child `baseline/seed=N`) and record it in
    the baseline's seed list; a seed already trained is not trained again."""
    tracker = runner.tracker
    if not T.is_seeded(baseline):
        raise UserError(
            f"baseline {baseline.run_id} was recorded with one seed: seeds can only be added to "
            "a baseline recorded with `--seeds 2` or more"
        )
    cfg = baseline_config(baseline).replace(seed=seed)
    for run in tracker.children(baseline.run_id):
        if run.state is RunState.COMPLETE and run.tags.get(T.TAG_CONFIG_HASH) == cfg.config_hash():
            return Outcome(run.run_id, run.name, run.state, dict(run.metrics))
    out = runner.train(
        cfg,
        f"baseline/seed={seed}",
        parent_id=baseline.run_id,
        tags={T.TAG_ROLE: Role.BASELINE_SEED},
    )
    if out.state is RunState.COMPLETE:
        fresh = tracker.get_run(baseline.run_id)
        seeds = sorted({*T.baseline_seeds(fresh), seed})
        tracker.set_tags(
            baseline.run_id,
            {T.TAG_SEEDS: str(len(seeds)), T.TAG_SEED_LIST: ",".join(map(str, seeds))},
        )
        losses = [r.metrics["best_val_loss"] for r in T.baseline_members(tracker, fresh)]
        summary = {
            "best_val_loss": statistics.fmean(losses),
            "best_val_loss_std": statistics.stdev(losses),
        }
        tracker.log_metrics(baseline.run_id, summary, len(seeds))
    return out
