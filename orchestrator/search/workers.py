"""Who runs the trials: the work loop of one process, and local worker processes.

Every worker, local or on another machine, runs the same loop on the shared study: recover
trials of dead workers, stop when the study-wide budget is met (or the timeout), wait while
other workers hold the last slots, else run one trial.

Ctrl-C (SIGINT to the process group), SIGTERM or SIGHUP: a worker process ends its trial
(Optuna FAIL, MLflow KILLED, its work folder removed) and exits 130; the main process sends
SIGTERM to the workers still alive, waits for them, then closes the parent run KILLED.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .. import tracking as T
from ..config import MAX_SEED
from ..errors import Interrupted
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


SEEDS = MAX_SEED + 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WORKER_GRACE_S = 120.0  # to end a trial: upload what it has, end the run KILLED


def _interrupt_once() -> None:
    """In a worker: the first of SIGINT / SIGTERM / SIGHUP interrupts the trial (the objective
    turns it into a FAIL, the Runner ends the run KILLED); later ones are ignored, so Ctrl-C
    and the main process's SIGTERM arriving together cannot cut that clean-up short."""
    fired = []

    def interrupt(signum, frame):
        if fired:
            return
        fired.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt()
        raise Interrupted(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


def _ignore(signum, frame) -> None:
    """A Python-level no-op, not SIG_IGN: a signal already delivered but not yet handled
    would make CPython print 'Signal N ignored due to race condition' after a switch to
    SIG_IGN."""


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """No SIGINT / SIGTERM / SIGHUP interrupts the block (the main process's clean-up)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _ignore) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _worker_main(spec: WorkerSpec) -> None:
    """Entry point of a local worker process (multiprocessing, spawn)."""
    _interrupt_once()
    try:
        import torch

        torch.set_num_threads(spec.threads)
        tracker = T.Tracker(spec.tracking_uri, spec.experiment, create=False)
        ctx = prepare(tracker, spec.options, Progress(live=False))
        # each worker's share of the cores, for the trainer too (threads is run-only: the
        # config hash, and so resume and duplicates, are the same whatever it is)
        ctx.base = ctx.base.replace(threads=spec.threads)
        work(ctx)
    except (KeyboardInterrupt, Interrupted):
        sys.exit(130)  # its trial and run are ended already (objective, Runner)


def worker_specs(ctx: SearchContext, options: Options, workers: int) -> list[WorkerSpec]:
    """One spec per worker: the same study and baseline; worker i seeds its sampler seed+i
    (modulo 2**32)."""
    threads = options.threads or max(1, (os.cpu_count() or 1) // workers)
    joined = replace(options, study=ctx.study.study_name, baseline_id=ctx.baseline.run_id)
    return [
        WorkerSpec(
            tracking_uri=ctx.tracker.uri,
            experiment=ctx.tracker.experiment_name,
            options=replace(
                joined, seed=None if options.seed is None else (options.seed + i) % SEEDS
            ),
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
        with signals_held():
            stop_workers(ctx, procs)
        raise
    for p in procs:
        if p.exitcode != 0:
            ctx.progress.warn(f"{p.name} (pid {p.pid}) exited with code {p.exitcode}")


def stop_workers(ctx: SearchContext, procs: list, grace_s: float = WORKER_GRACE_S) -> None:
    """SIGTERM to the live workers; wait for them to end their trials (SIGKILL past
    `grace_s`); then fail whatever a killed one left RUNNING, as for any dead worker."""
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: the worker's handler ends its trial
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            ctx.progress.warn(f"{p.name} (pid {p.pid}) did not stop in {grace_s:.0f} s: killed")
            p.kill()
            p.join(10)
    with contextlib.suppress(Exception):  # best effort: the next search reconciles too
        reconcile(ctx)
