"""Who runs the trials: the work loop of one process, and local worker processes.

Every worker, local or on another machine, runs the same loop on the shared study: recover
trials of dead workers, stop when the study-wide budget is met (or the timeout), wait while
other workers hold the last slots, else run one trial.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, replace

from .. import tracking as T
from ..progress import Progress
from ..studies import heartbeat_seconds
from .budget import budget
from .context import Options, SearchContext
from .objective import objective
from .recovery import reconcile
from .study import prepare


def work(ctx: SearchContext) -> None:
    """Run trials until the study holds ctx.n_trials finished ones (or the deadline)."""
    announced = False
    run_one = functools.partial(objective, ctx)
    while True:
        reconcile(ctx)
        state = budget(ctx.study.get_trials(deepcopy=False))
        if state.done(ctx.n_trials):
            return
        left = ctx.time_left()
        if left is not None and left <= 0:
            ctx.progress.say("timeout reached: stopping this worker")
            return
        if not state.can_start(ctx.n_trials):
            if not announced:
                ctx.progress.say(f"waiting for {state.running} trial(s) running in other workers")
                announced = True
            time.sleep(min(2.0, heartbeat_seconds()))
            continue
        announced = False
        timeout = None if left is None else max(1.0, left)
        ctx.study.optimize(run_one, n_trials=1, timeout=timeout, gc_after_trial=False)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a spawned worker process needs (picklable): where the store is, and the
    options of the search it joins (study name and baseline resolved, its own seed)."""

    tracking_uri: str
    experiment: str
    options: Options
    threads: int


def _worker_main(spec: WorkerSpec) -> None:
    """Entry point of a local worker process (multiprocessing, spawn)."""
    import torch

    torch.set_num_threads(spec.threads)
    tracker = T.Tracker(spec.tracking_uri, spec.experiment, create=False)
    work(prepare(tracker, spec.options, Progress(live=False)))


def worker_specs(ctx: SearchContext, options: Options, workers: int) -> list[WorkerSpec]:
    """One spec per worker: the same study and baseline; worker i seeds its sampler seed+i."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    joined = replace(options, study=ctx.study.study_name, baseline_id=ctx.baseline.run_id)
    return [
        WorkerSpec(
            tracking_uri=ctx.tracker.uri,
            experiment=ctx.tracker.experiment_name,
            options=replace(joined, seed=None if options.seed is None else options.seed + i),
            threads=threads,
        )
        for i in range(workers)
    ]


def run_workers(ctx: SearchContext, options: Options) -> None:
    """Start `options.workers` local processes on the study and wait for them."""
    import multiprocessing as mp

    specs = worker_specs(ctx, options, options.workers)
    mp_ctx = mp.get_context("spawn")
    procs = []
    for i, spec in enumerate(specs):
        p = mp_ctx.Process(target=_worker_main, args=(spec,), name=f"sweep-worker-{i}")
        p.start()
        procs.append(p)
    pids = ", ".join(str(p.pid) for p in procs)
    ctx.progress.say(
        f"{len(procs)} workers started ({specs[0].threads} torch thread(s) each): pids {pids}"
    )
    try:
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
        raise
    for p in procs:
        if p.exitcode != 0:
            ctx.progress.warn(f"{p.name} (pid {p.pid}) exited with code {p.exitcode}")
