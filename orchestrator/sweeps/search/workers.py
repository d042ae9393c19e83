"""Who runs the trials: the work loop of one process, and local worker processes.

Every worker, local or on another machine, runs the same loop on the shared study: recover
trials of dead workers, stop when the study-wide budget is met (or the timeout), wait while
other workers hold the last slots, else run one trial. Local workers are processes started
by the execution layer (`execution/processes.py`: signals, stopping, exit codes); a worker
ends its trial on Ctrl-C, SIGTERM or SIGHUP (Optuna FAIL, MLflow KILLED) and exits 130,
143 or 129 (128 + the signal); a lost or full journal ends it with exit 1.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, replace

from ... import tracking as T
from ...config import MAX_SEED
from ...errors import Interrupted, JournalError, exit_code
from ...execution.env import RunEnv
from ...execution.processes import interrupt_once, run_processes
from ...progress import Progress
from ...studies import heartbeat_seconds, journal_failure
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
        try:
            ctx.study.optimize(run_one, n_trials=1, timeout=timeout, gc_after_trial=False)
        except Exception as e:
            # a journal lost (or a full disk) under Optuna's trial runner surfaces as its
            # UnboundLocalError or AssertionError: the JournalError underneath is what happened
            lost = journal_failure(e)
            if lost is None:
                raise
            raise lost from None


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a spawned worker process needs (picklable): where the store is, and the
    options of the search it joins (study name and baseline resolved, its own seed)."""

    tracking_uri: str
    experiment: str
    options: Options
    threads: int
    retrain: bool = False


SEEDS = MAX_SEED + 1


def worker_main(spec: WorkerSpec) -> None:
    """Entry point of a worker process (a local one, or a job on a cluster)."""
    interrupt_once()
    try:
        import torch

        torch.set_num_threads(spec.threads)
        tracker = T.Tracker(spec.tracking_uri, spec.experiment, create=False)
        # each worker's share of the cores, for the trainer too (threads is run-only: the
        # config hash, and so resume and reuse, are the same whatever it is)
        env = RunEnv(tracker, Progress(live=False), threads=spec.threads, retrain=spec.retrain)
        work(prepare(env, spec.options, say_notes=False))
    except (KeyboardInterrupt, Interrupted) as e:
        sys.exit(exit_code(e))  # its trial and run are ended already (objective, runner)
    except JournalError as e:  # its run is ended FAILED; the main process ends the parent
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


def worker_specs(ctx: SearchContext, options: Options, workers: int) -> list[WorkerSpec]:
    """One spec per worker: the same study and baseline; worker i seeds its sampler seed+i
    (modulo 2**32)."""
    threads = options.threads or max(1, (os.cpu_count() or 1) // workers)
    joined = replace(options, study=ctx.study.study_name, baseline_id=ctx.baseline.run_id)
    return [
        WorkerSpec(
            tracking_uri=ctx.tracker.connect_uri,
            experiment=ctx.tracker.experiment_name,
            options=replace(
                joined, seed=None if options.seed is None else (options.seed + i) % SEEDS
            ),
            threads=threads,
            retrain=ctx.env.retrain,
        )
        for i in range(workers)
    ]


def run_workers(ctx: SearchContext, options: Options) -> list[int | None]:
    """Start `options.workers` local processes on the study and wait for them; on an
    interrupt, stop them and fail whatever a killed one left RUNNING (as for any dead
    worker). Returns their exit codes."""
    specs = worker_specs(ctx, options, options.workers)
    return run_processes(
        worker_main,
        specs,
        ctx.progress,
        describe=f" ({specs[0].threads} torch thread(s) each)",
        after_stop=lambda: reconcile(ctx),
    )
