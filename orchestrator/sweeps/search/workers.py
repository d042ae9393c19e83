"""Who runs the trials: the work loop of one process, and the worker processes.

Every worker, local or on another machine, runs the same loop on the shared study: recover
trials of dead workers, stop when the study-wide budget is met (or the timeout), wait while
other workers hold the last slots, else run one trial. Workers are started by the execution
layer: local processes (`execution/processes.py`: signals, stopping, exit codes), or with
`--launcher slurm` the tasks of one job array (`execution/slurm_runs.py`). A worker ends its
trial on Ctrl-C, SIGTERM or SIGHUP (Optuna FAIL, MLflow KILLED) and exits 130, 143 or 129
(128 + the signal); a lost or full journal ends it with exit 1. A Slurm worker's stopped
trial is retried once, and after submitit's USR2 the job is requeued.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from dataclasses import dataclass, replace

from ... import tracking as T
from ...config import MAX_SEED
from ...errors import Interrupted, JournalError, WorkersLost, exit_code, signal_of
from ...execution.env import RunEnv
from ...execution.processes import SignalGate, interrupt_once, run_processes
from ...execution.slurm import TaskSignals
from ...execution.slurm_runs import launch_workers
from ...progress import Progress
from ...studies import heartbeat_seconds, journal_failure
from .attrs import ATTR_RUN, ATTR_SURPLUS, ATTR_WORKER
from .budget import budget, retried_number
from .context import Options, SearchContext
from .objective import objective
from .recovery import StaleTrials, fail_and_retry, reconcile
from .study import prepare
from .summary import finish, idle, report_lines


def work(ctx: SearchContext) -> None:
    """Run trials until the study holds ctx.n_trials finished ones (or the deadline)."""
    announced = False
    gate = SignalGate()  # signals act only inside the objective, once the trial is named
    run_one = functools.partial(objective, ctx, gate=gate)
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
            with gate.closed():
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
    """Everything a worker needs (picklable): where the store is, and the options of the
    search it joins (study name and baseline resolved, its own seed). `cluster`: a job of a
    cluster's launcher (Slurm): a trial a signal stops is failed and retried once (scancel,
    preemption and time limits are not the trial's fault), and after submitit's USR2 the
    job is requeued once the trial has ended. `closes`: nobody waits for the workers
    (--detach), so the last one to finish closes the parent run."""

    tracking_uri: str
    experiment: str
    options: Options
    threads: int
    retrain: bool = False
    cluster: bool = False
    closes: bool = False


SEEDS = MAX_SEED + 1


def worker_main(spec: WorkerSpec) -> None:
    """Entry point of a worker process (a local one, or a job on a cluster)."""
    signals = TaskSignals() if spec.cluster else None
    if signals is None:
        interrupt_once()
    ctx = None
    try:
        import torch

        torch.set_num_threads(spec.threads)
        tracker = T.Tracker(spec.tracking_uri, spec.experiment, create=False)
        # each worker's share of the cores, for the trainer too (threads is run-only: the
        # config hash, and so resume and reuse, are the same whatever it is)
        env = RunEnv(tracker, Progress(live=False), threads=spec.threads, retrain=spec.retrain)
        ctx = prepare(env, spec.options, say_notes=False)
        work(ctx)
        if spec.closes and idle(ctx):
            result = finish(ctx, spec.options.storage, [], plots=True)
            ctx.progress.say("\n".join(report_lines(result)))
    except (KeyboardInterrupt, Interrupted) as e:
        if signals is not None:
            if ctx is not None:
                retry_stopped(ctx)
            # after USR2 (even while the worker was still starting): submitit checkpoints,
            # requeues, exits
            signals.requeue_if_asked()
        sys.exit(exit_code(e))  # its trial and run are ended already (objective, runner)
    except JournalError as e:  # its run is ended FAILED; the main process ends the parent
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


def retry_stopped(ctx: SearchContext) -> None:
    """The trials this process ran that a signal stopped (Optuna FAIL, their runs KILLED)
    are retried once, as Optuna's heartbeat retries a dead worker's (recovery.StaleTrials),
    so a stopped job costs the study no trial."""
    from optuna.trial import TrialState

    mine = f"{socket.gethostname()}:{os.getpid()}:"
    trials = ctx.study.get_trials(deepcopy=False)
    retried = {retried_number(t) for t in trials}
    on_stale = StaleTrials(ctx.tracker)
    for t in trials:
        if (
            t.state == TrialState.FAIL
            and str(t.user_attrs.get(ATTR_WORKER, "")).startswith(mine)
            and t.number not in retried
            and not t.user_attrs.get(ATTR_SURPLUS)
        ):
            on_stale(ctx.study, t)


def worker_specs(ctx: SearchContext, options: Options, workers: int) -> list[WorkerSpec]:
    """One spec per worker: the same study and baseline; worker i seeds its sampler seed+i
    (modulo 2**32). Torch threads: --threads, else a Slurm task's CPUs, else this machine's
    share."""
    launcher = ctx.env.launcher
    if options.threads:
        threads = options.threads
    elif launcher is not None:
        threads = launcher.cpus
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
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
            cluster=launcher is not None,
            closes=launcher is not None and launcher.detach,
        )
        for i in range(workers)
    ]


def run_workers(ctx: SearchContext, options: Options) -> list[str]:
    """Start `options.workers` workers on the study and wait for them; on an interrupt, stop
    them and fail whatever a killed one left RUNNING (as for any dead worker). Local
    processes, or with a launcher one Slurm job array; detached (--detach), return at once.
    The Slurm job ids (none for local workers)."""
    specs = worker_specs(ctx, options, options.workers)
    if ctx.env.launcher is not None:
        array = launch_workers(
            ctx.env,
            worker_main,
            specs,
            progress_line=functools.partial(progress_line, ctx),
            after_stop=functools.partial(fail_trials_of, ctx),
        )
        if not ctx.env.launcher.detach:
            fail_trials_of(ctx, array.ids)  # a job killed mid-trial (node lost, OOM, SIGKILL)
            all_ended(ctx)
        return array.ids
    codes = run_processes(
        worker_main,
        specs,
        ctx.progress,
        describe=f" ({specs[0].threads} torch thread(s) each)",
        after_stop=lambda: reconcile(ctx),
    )
    stopped_by(codes)
    reconcile(ctx)  # the trials of a worker that died (SIGKILL, the OOM killer)
    all_ended(ctx)
    return []


def all_ended(ctx: SearchContext) -> None:
    """Every worker has ended: short of the budget (and of the deadline), they were lost (a
    job that failed as it started, a crash), and the search failed; never `complete`."""
    state = budget(ctx.study.get_trials(deepcopy=False))
    left = ctx.time_left()
    if not state.done(ctx.n_trials) and (left is None or left > 0):
        raise WorkersLost(
            f"every worker ended with {state.finished} of {ctx.n_trials} trials finished "
            "(see the warnings above); run the same command again to go on"
        )


def stopped_by(codes: list[int | None]) -> None:
    """Workers that a signal ended (Ctrl-C to a script whose background `sweep search`
    ignores SIGINT itself, a SIGTERM to the workers alone) interrupted the search: it ends
    KILLED as if the main process had been interrupted, never complete."""
    stopped = next((signal_of(c) for c in codes if signal_of(c)), None)
    if stopped is not None:
        raise Interrupted(stopped)


def fail_trials_of(ctx: SearchContext, jobs: list[str]) -> None:
    """Trials still RUNNING whose run trained in one of these Slurm jobs, all ended: nothing
    trains them any more. Failed, retried once and their runs ended KILLED now, not once
    their heartbeat has gone stale (the parent run closes with them); then the usual
    recovery."""
    from optuna.trial import TrialState

    ended, on_stale = set(jobs), StaleTrials(ctx.tracker)
    for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_id = t.user_attrs.get(ATTR_RUN)
        job = ctx.tracker.get_run(run_id).tags.get(T.TAG_SLURM_JOB) if run_id else None
        if job in ended:
            fail_and_retry(ctx, t, f"its Slurm job {job} ended mid-trial", on_stale)
    reconcile(ctx)


def progress_line(ctx: SearchContext, states: dict[str, str]) -> str:
    """'3 of 6 trials finished | 4242_0 RUNNING: 2 trials, on trial-5 | 4242_1 PENDING':
    the study, and per worker job its state, the trials it ended and the one it trains."""
    runs = ctx.tracker.children(ctx.parent_id)
    done = budget(ctx.study.get_trials(deepcopy=False)).finished
    parts = [f"{done} of {ctx.n_trials} trials finished"]
    for job, state in states.items():
        mine = [r for r in runs if r.tags.get(T.TAG_SLURM_JOB) == job]
        ended = sum(r.state is not T.RunState.RUNNING for r in mine)
        now = [r.name for r in mine if r.state is T.RunState.RUNNING]
        part = f"{job} {state}"
        if mine:
            part += f": {ended} trial{'s' if ended != 1 else ''}"
            part += f", on {now[0]}" if now else ""
        parts.append(part)
    return " | ".join(parts)
