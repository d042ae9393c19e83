"""Record a baseline (one run, or a parent with one child per seed), add a seed to it, and
find the baseline a sweep compares against."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .. import tracking as T
from ..config import RunConfig, recorded_config
from ..errors import UserError
from ..execution.env import RunEnv
from ..execution.runner import run_params
from ..execution.spec import Outcome, RunSpec
from ..tracking import Role, RunState
from .reuse import link, reusable
from .sweep import Sweep


@dataclass
class BaselineResult:
    run_id: str
    outcomes: list[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.state.has_result for o in self.outcomes)


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


def against(env: RunEnv, baseline_id: str | None) -> tuple[T.RunInfo, RunConfig]:
    """The baseline a sweep compares against and its recorded config (never re-read from a
    profile), with the command's run-only settings; warns when the precision differs, and
    holds every run of the command to the baseline's corpus."""
    baseline = T.find_baseline(env.tracker, baseline_id)
    base = env.run_only(recorded_config(baseline))
    if note := precision_note(env.tracker, baseline, base):
        env.progress.warn(note)
    env.expect_sha256 = baseline.params.get("dataset.sha256")
    return baseline, base


def seed_list(first: int, seeds: int) -> list[int]:
    """Seeds first, first+1, ...: ablations and confirmations reuse the baseline's list."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    return [first + i for i in range(seeds)]


def comparison_seeds(baseline: T.RunInfo, base: RunConfig, seeds: int | None) -> list[int]:
    """The seeds a sweep against `baseline` trains: the baseline's own (paired comparisons),
    or `--seeds N` from the seed of its config `base` on."""
    return T.baseline_seeds(baseline) if seeds is None else seed_list(base.train.seed, seeds)


def record_baseline(env: RunEnv, cfg: RunConfig, seeds: int = 1) -> BaselineResult:
    seed_values = seed_list(cfg.train.seed, seeds)
    cfg = env.check(cfg)  # a bad config is refused before anything is recorded
    tags = {
        T.TAG_ROLE: Role.BASELINE,
        T.TAG_SEEDS: str(seeds),
        T.TAG_SEED_LIST: ",".join(map(str, seed_values)),
    }
    if seeds == 1:
        return BaselineResult(*_single(env, cfg, tags))
    sweep = Sweep.create(
        env,
        "baseline",
        {**tags, T.TAG_CONFIG_HASH: cfg.config_hash()},
        params=run_params(cfg, env.dataset(cfg.data).identity()),
    )
    specs = [
        RunSpec(cfg.replace(seed=s), f"baseline/seed={s}", {T.TAG_ROLE: Role.BASELINE_SEED})
        for s in seed_values
    ]
    with sweep.guard():  # Ctrl-C, SIGTERM, SIGHUP: the parent ends KILLED with its seeds
        outcomes = sweep.train(specs)
    done = [o for o in outcomes if o.state.has_result]
    if done:
        log_seed_summary(env.tracker, sweep.run_id, [o.summary for o in done], 0)
    failed = [o for o in outcomes if not o.state.has_result]
    if failed:
        sweep.end(RunState.FAILED, f"{len(failed)} of {seeds} seeds failed: {failed[0].reason}")
    else:
        sweep.end(RunState.COMPLETE)
    return BaselineResult(sweep.run_id, outcomes)


def _single(env: RunEnv, cfg: RunConfig, tags: dict[str, str]) -> tuple[str, list[Outcome]]:
    """A one-seed baseline: one top-level run (a link to an identical finished run, if any)."""
    from ..execution.estimate import say_estimate
    from ..execution.runner import train

    ready = env.prepare(cfg)
    spec = RunSpec(ready.cfg, "baseline", tags)
    source = reusable(env, ready)
    if source is not None:
        out = link(env, spec, source, None)
        return out.run_id, [out]
    say_estimate(env, ready.cfg, 1)
    env.progress.sweep(1)
    run_id = env.tracker.create_run(
        "baseline",
        tags={**tags, T.TAG_CONFIG_HASH: ready.cfg.config_hash(), T.TAG_SEED: str(cfg.train.seed)},
    )
    out = train(env, RunSpec(ready.cfg, "baseline", tags, run_id=run_id))
    return out.run_id, [out]


def log_seed_summary(
    tracker: T.Tracker, run_id: str, summaries: list[dict[str, float]], step: int
) -> None:
    """The mean (and spread) of the seeds' best val loss on a seeded baseline's parent."""
    losses = [s["best_val_loss"] for s in summaries]
    summary = {
        "best_val_loss": statistics.fmean(losses),
        "best_val_loss_std": statistics.stdev(losses) if len(losses) > 1 else 0.0,
        "best_val_ppl": statistics.fmean(s.get("best_val_ppl", math.nan) for s in summaries),
    }
    tracker.log_metrics(run_id, {k: v for k, v in summary.items() if math.isfinite(v)}, step)


def add_seed(env: RunEnv, baseline: T.RunInfo, seed: int) -> Outcome:
    """Train one more seed of a seeded baseline (a child `baseline/seed=N`) and record it in
    the baseline's seed list; a seed already trained (here or elsewhere) is not trained again."""
    if not T.is_seeded(baseline):
        raise UserError(
            f"baseline {baseline.run_id} was recorded with one seed: seeds can only be added to "
            "a baseline recorded with `--seeds 2` or more"
        )
    cfg = recorded_config(baseline).replace(seed=seed)
    sweep = Sweep.resume(env, baseline, reopen=False)
    spec = RunSpec(cfg, f"baseline/seed={seed}", {T.TAG_ROLE: Role.BASELINE_SEED})
    (out,) = sweep.train([spec], estimate=False)
    if out.state.has_result:
        tracker = env.tracker
        fresh = tracker.get_run(baseline.run_id)
        seeds = sorted({*T.baseline_seeds(fresh), seed})
        tracker.set_tags(
            baseline.run_id,
            {T.TAG_SEEDS: str(len(seeds)), T.TAG_SEED_LIST: ",".join(map(str, seeds))},
        )
        members = T.baseline_members(tracker, fresh)
        log_seed_summary(tracker, baseline.run_id, [dict(r.metrics) for r in members], len(seeds))
    return out
