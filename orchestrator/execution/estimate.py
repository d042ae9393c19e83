"""How long will it take? An estimate from measured throughput, said before training.

From the store when a finished run of the same shape (layers, width, context, batch, device)
exists: its wall time, scaled by steps. Otherwise from a probe: the first few optimizer steps
of the config itself, timed (a throwaway model; the real run starts from its own seed).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from .. import tracking as T
from ..config import RunConfig
from ..tracking import RunState
from .env import RunEnv

SHAPE = ("n_layer", "n_embed", "n_head", "block_size", "batch_size", "grad_accum_steps", "amp")
PROBE_STEPS = 4


def _from_store(tracker: T.Tracker, cfg: RunConfig, threads: int) -> tuple[float, str] | None:
    """From a finished run of the same shape trained with as many torch threads."""
    flat = cfg.to_flat()
    where = " and ".join(f"params.`{k}` = '{flat[k]}'" for k in SHAPE)
    where += f" and tags.`{T.TAG_THREADS}` = '{threads}'"
    for run in tracker.search(where, max_results=20):
        steps = float(run.params.get("max_steps", "nan"))
        wall = run.metrics.get("wall_s", math.nan)
        if run.state is RunState.COMPLETE and steps > 0 and math.isfinite(wall):
            return (
                wall * cfg.train.max_steps / steps,
                f"run {run.name} ({run.run_id[:8]}) of the same shape",
            )
    return None


def _probe(cfg: RunConfig, dataset, threads: int) -> tuple[float, str] | None:
    from model.train import Trainer, TrainerHooks

    stamps: list[float] = []

    class Clock(TrainerHooks):
        def on_step(self, step, loss, tokens_per_s):
            stamps.append(time.perf_counter())

    probe = cfg.replace(
        max_steps=PROBE_STEPS,
        eval_every=PROBE_STEPS,
        eval_iters=1,
        max_new_tokens=0,
        threads=threads,
    )
    with tempfile.TemporaryDirectory(prefix="sweep-probe-") as tmp:
        trainer = Trainer(probe.gpt, probe.train, dataset, out_dir=Path(tmp), hooks=Clock())
        trainer.run()
    if len(stamps) < 2:
        return None
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    evals = cfg.train.max_steps // cfg.train.eval_every + 1
    eval_steps = evals * 2 * cfg.train.eval_iters / max(1, cfg.train.grad_accum_steps) / 3
    return per_step * (cfg.train.max_steps + eval_steps), f"{PROBE_STEPS} steps timed just now"


def estimate(tracker: T.Tracker, cfg: RunConfig, dataset, threads: int) -> tuple[float, str] | None:
    """(seconds for one run of cfg with `threads` torch threads, where the figure comes
    from), or None."""
    try:
        return _from_store(tracker, cfg, threads) or _probe(cfg, dataset, threads)
    except Exception:  # an estimate must never stop a sweep
        return None


def duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def say_estimate(
    env: RunEnv, cfg: RunConfig, runs: int, *, what: str = "run", parallel: int = 1, bound: str = ""
) -> None:
    """One line before training: about how long per run and for the whole command
    (`runs` runs of `cfg`, `parallel` at a time; `bound` "at most " where pruning shortens)."""
    if runs < 1:
        return
    from model.train import resolve_threads

    ready = env.prepare(cfg)
    threads = resolve_threads(ready.cfg.train.threads)  # what a run starting now would use
    got = estimate(env.tracker, ready.cfg, ready.dataset, threads)
    if got is None:
        return
    seconds, source = got
    about = "" if seconds < 1 else "about "
    total = ""
    if runs > 1:
        rounds = math.ceil(runs / max(1, parallel))
        on = f" on {parallel} workers" if parallel > 1 else ""
        total = f", {bound}{duration(seconds * rounds)} for {runs} {what}s{on}"
    env.progress.say(
        f"estimated time: {about}{duration(seconds)} per {what}{total} (from {source}; "
        f"{threads} torch thread{'s' if threads > 1 else ''})"
    )
