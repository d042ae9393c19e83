"""Where runs train when a command says `--launcher slurm`: as the tasks of one job array.

`SlurmLauncher` (a command's `RunEnv.launcher`) holds what each task asks Slurm for and
whether the command waits; `slurm_launcher` builds it and refuses, in one line and before
anything is recorded, a store the nodes cannot share (a local SQLite file) and a machine
without sbatch. Two uses:

- `run_specs_on_slurm(env, specs, open_run)`: the specs of an ablation, a confirmation or a
  round of until-clear, one array task each. The submitting side opens every run first (the
  sweep's `open_run`: reuse and resume work exactly as on this machine), ships (tracking
  URI, experiment, the RunSpec with its run id) to its task and waits. The task claims the
  run (its pid, host and Slurm job become the run's tags) and trains it with
  `runner.train`. A requeued task (preempted, or at its time limit) trains its spec again in
  a new run, the interrupted one ended KILLED. A run no task ended (cancelled before it
  started, killed by Slurm) is ended by the submitting side, with the task's state.
- `launch_workers(env, target, args)`: N calls of a worker loop (a search's) as one array,
  waited for with a progress line, or left running (`detach`).

Ctrl-C while waiting cancels the array (scancel: SIGTERM, so each task ends its run
KILLED), waits for the tasks to end, and ends KILLED any run none of them ended.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from .. import tracking as T
from ..config import slurm_table
from ..errors import Interrupted, UserError
from ..progress import Progress
from ..tracking import RunState
from ..tracking.store import where
from .env import RunEnv
from .processes import signals_held
from .runner import train
from .slurm import (
    ACTIVE,
    JobArray,
    TaskResult,
    TaskSignals,
    cancel,
    check_available,
    jobs_folder,
    settle,
    submit,
    summary,
    task_result,
    wait,
)
from .slurm_options import SlurmOptions
from .spec import Outcome, RunSpec

# A task that ended in one of these without ending its run: the run ends KILLED (else FAILED).
STOPPED = frozenset({"CANCELLED", "PREEMPTED"})


@dataclass(frozen=True)
class SlurmLauncher:
    """`--launcher slurm`: what each array task asks for, and whether the command returns as
    soon as the jobs are submitted (`detach`, a search only)."""

    options: SlurmOptions
    detach: bool = False
    poll_s: float = 2.0  # squeue every 2 s while the command waits (sacct once a task ends)
    name: ClassVar[str] = "slurm"

    @property
    def cpus(self) -> int:
        """CPUs each task has: its torch threads unless --threads says otherwise."""
        return self.options.cpus

    def folder(self, tracker: T.Tracker) -> Path:
        return jobs_folder(tracker.store_dir)


def check_store(tracker: T.Tracker) -> None:
    """Refuse a store that jobs on other machines cannot share safely (a local file)."""
    uri = tracker.uri
    if "://" in uri and not uri.startswith(("sqlite:", "file:")):
        return
    kind = "a local SQLite file" if uri.startswith("sqlite:") else "a local folder"
    raise UserError(
        f"--launcher slurm: the MLflow store {uri} is {kind}, which jobs on other machines "
        "cannot share safely; start an MLflow tracking server and pass --tracking-uri "
        "http://HOST:5000"
    )


def slurm_launcher(
    tracker: T.Tracker,
    flags: Mapping[str, Any],
    profile: str | None = None,
    *,
    detach: bool = False,
) -> SlurmLauncher:
    """The options of `profile`'s [slurm] table with the flags (not None) over them; refused
    where the nodes could not share the store, or where there is no sbatch."""
    options = SlurmOptions()
    if profile is not None:
        label, table = slurm_table(profile)
        options = SlurmOptions.from_table(table, f"profile {label}")
    options = options.merged(**flags)
    check_store(tracker)
    check_available()
    return SlurmLauncher(options, detach)


# -- one spec, one task -------------------------------------------------------------------
@dataclass(frozen=True)
class TrainTask:
    """What an array task needs to train one spec (picklable: a spec without hooks)."""

    tracking_uri: str  # the tracker's connect URI (an http password travels in MLflow's env)
    experiment: str
    spec: RunSpec  # with the run id the submitting side opened
    threads: int | None
    expect_sha256: str | None


def train_task(task: TrainTask) -> Outcome:
    """The callable of an array task: claim the spec's run and train it."""
    signals = TaskSignals()
    try:
        tracker = T.Tracker(task.tracking_uri, task.experiment, create=False)
        env = RunEnv(
            tracker,
            Progress(live=False),
            threads=task.threads,
            expect_sha256=task.expect_sha256,
        )
        opened = claim(tracker, task.spec)
        if isinstance(opened, Outcome):
            return opened
        try:
            return train(env, opened)
        except Exception as e:  # refused here (a corpus the node cannot read): the run fails
            end_if_running(tracker, opened.run_id, RunState.FAILED, f"{type(e).__name__}: {e}")
            raise
    except (KeyboardInterrupt, Interrupted):
        signals.requeue_if_asked()  # after USR2: submitit checkpoints, requeues and exits
        sys.exit(130)  # the run ended KILLED already (runner)


def end_if_running(tracker: T.Tracker, run_id: str, state: RunState, reason: str) -> RunState:
    """End the run unless it ended already; its final state."""
    with contextlib.suppress(UserError):
        run = tracker.get_run(run_id)
        if run.state is not RunState.RUNNING:
            return run.state
    tracker.end_run(run_id, state, reason)
    return state


def claim(tracker: T.Tracker, spec: RunSpec) -> RunSpec | Outcome:
    """The run this task trains into. Its own run as the submitting side opened it; after a
    requeue (the same task again), a new run, the earlier attempt's ended KILLED if it was
    left RUNNING; an earlier attempt's finished run stands. A run someone else ended before
    the task started (Ctrl-C on the submitting side) is not trained."""
    assert spec.run_id is not None, "the submitting side opens the run"
    job = where().get(T.TAG_SLURM_JOB)
    run = tracker.get_run(spec.run_id)
    family = tracker.children(run.parent_id) if run.parent_id else [run]
    earlier = [
        r for r in family if r.name == spec.name and job and r.tags.get(T.TAG_SLURM_JOB) == job
    ]
    done = next((r for r in [run, *earlier] if T.has_result(r)), None)
    if done is not None:
        return Outcome(done.run_id, done.name, done.state, dict(done.metrics))
    for r in earlier:
        end_if_running(
            tracker, r.run_id, RunState.KILLED, f"its Slurm task {job} was requeued mid-run"
        )
    if run.run_id not in {r.run_id for r in earlier}:
        if run.state is not RunState.RUNNING:
            why = run.tags.get(T.TAG_REASON) or "ended before its Slurm task started"
            return Outcome(run.run_id, run.name, run.state, {}, why, new=False)
        tracker.reopen(run.run_id)  # claimed: this task's pid, host and job
        return spec
    new = tracker.create_run(spec.name, parent_id=run.parent_id, tags=dict(spec.tags))
    return replace(spec, run_id=new)


# -- the submitting side ------------------------------------------------------------------
def run_specs_on_slurm(
    env: RunEnv, specs: Sequence[RunSpec], open_run: Callable[[RunSpec], RunSpec | Outcome]
) -> list[Outcome]:
    """Open every spec's run, train those opened as one job array, wait; Outcomes in spec
    order (a spec another process claimed comes back as its Outcome, untrained)."""
    opened = [open_run(spec) for spec in specs]
    todo = [(i, s) for i, s in enumerate(opened) if isinstance(s, RunSpec)]
    out = {i: o for i, o in enumerate(opened) if isinstance(o, Outcome)}
    if todo:
        trained = train_array(env, [s for _, s in todo])
        out.update({i: o for (i, _), o in zip(todo, trained, strict=True)})
    return [out[i] for i in range(len(specs))]


def train_array(env: RunEnv, specs: list[RunSpec]) -> list[Outcome]:
    launcher = env.launcher
    assert isinstance(launcher, SlurmLauncher)
    if any(spec.hooks for spec in specs):
        raise ValueError("a spec with trainer hooks cannot train in a Slurm task")
    tracker = env.tracker
    threads = env.threads or launcher.cpus
    tasks = [
        (TrainTask(tracker.connect_uri, tracker.experiment_name, s, threads, env.expect_sha256),)
        for s in specs
    ]
    try:
        array = submit(
            train_task, tasks, launcher.options, launcher.folder(tracker), name="sweep-run"
        )
    except BaseException as e:
        for spec in specs:
            end_if_running(tracker, spec.run_id, RunState.FAILED, f"not submitted: {e}")
        raise
    env.progress.say(submitted(array))
    watch = Watch(env.progress, array, names=[s.name for s in specs])
    try:
        results = wait(array, watch, poll_s=launcher.poll_s)
    except BaseException:
        with signals_held():  # a second Ctrl-C does not leave runs RUNNING
            stopped = settle(array)
            for spec, job in zip(specs, array.ids, strict=True):
                for run_id in runs_of(tracker, spec, job):
                    end_if_running(
                        tracker,
                        run_id,
                        RunState.KILLED,
                        f"Slurm task {job} {stopped.get(job, 'CANCELLED')}: interrupted "
                        "(Ctrl-C on the command that submitted it)",
                    )
        raise
    return [ended(env, s, r) for s, r in zip(specs, results, strict=True)]


def runs_of(tracker: T.Tracker, spec: RunSpec, job: str) -> list[str]:
    """The run opened for the spec and any a requeued task made for it, oldest first."""
    assert spec.run_id is not None
    parent = tracker.get_run(spec.run_id).parent_id
    later = [
        r.run_id
        for r in (tracker.children(parent) if parent else [])
        if r.run_id != spec.run_id and r.name == spec.name and r.tags.get(T.TAG_SLURM_JOB) == job
    ]
    return [spec.run_id, *sorted(later)]


def ended(env: RunEnv, spec: RunSpec, result: TaskResult) -> Outcome:
    """The Outcome a task returned; for a task that returned none, its run's, ended here
    (KILLED for a cancelled or preempted task, else FAILED) if it was still RUNNING."""
    if result.ok and isinstance(result.value, Outcome):
        return result.value
    tracker = env.tracker
    run = tracker.get_run(runs_of(tracker, spec, result.job_id)[-1])
    if run.state is RunState.RUNNING:
        state = RunState.KILLED if result.state in STOPPED else RunState.FAILED
        reason = f"Slurm task {result.job_id} ended {result.state}{why(result)}"
        tracker.end_run(run.run_id, state, f"{reason} (log: {result.log})")
    else:  # the task ended it (interrupted: KILLED, with its reason)
        state, reason = run.state, run.tags.get(T.TAG_REASON)
    env.progress.run_end(f"{spec.name} ({result.job_id})", state, {}, reason)
    return Outcome(run.run_id, spec.name, state, dict(run.metrics), reason)


def why(result: TaskResult) -> str:
    """': <what its error came to>' (its traceback's last line), or '' for a task that left
    no result (cancelled, killed: its log says more)."""
    lines = [ln.strip() for ln in (result.error or "").splitlines() if ln.strip()]
    if not lines or result.error.startswith(f"{result.state}: no result"):
        return ""
    return f": {lines[-1]}"


def submitted(array: JobArray) -> str:
    ids = array.ids
    if len(ids) == 1:  # sbatch makes one call a plain job
        return f"submitted job {ids[0]}; logs in {array.folder}/{ids[0]}/"
    shown = ", ".join(ids) if len(ids) <= 4 else f"{ids[0]} ... {ids[-1]}"
    return (
        f"submitted job array {array.array_id} ({len(ids)} tasks: {shown}); "
        f"logs in {array.folder}/{array.array_id}_*/"
    )


class Watch:
    """The progress lines while an array runs: `line(states)` (default: the tasks' states)
    whenever it changes, and, given the tasks' run names, each task's run as it ends."""

    def __init__(
        self,
        progress: Progress,
        array: JobArray,
        line: Callable[[dict[str, str]], str] | None = None,
        names: Sequence[str] | None = None,
    ):
        self.progress = progress
        self.array = array
        self.line = line or (lambda now: f"job array {array.array_id}: {summary(now)}")
        self.names = names
        self.last = ""
        self.reported: set[str] = set()

    def __call__(self, now: dict[str, str]) -> None:
        line = self.line(now)
        if line != self.last:
            self.progress.say(line)
            self.last = line
        for job, name in zip(self.array.jobs, self.names or (), strict=False):
            state = now[job.job_id]
            if state in ACTIVE or job.job_id in self.reported:
                continue
            self.reported.add(job.job_id)
            result = task_result(job, state)
            if result.ok and isinstance(result.value, Outcome):
                out = result.value
                self.progress.run_end(f"{name} ({job.job_id})", out.state, out.summary, out.reason)


def launch_workers(
    env: RunEnv,
    target: Callable[[Any], None],
    args: Sequence[Any],
    *,
    progress_line: Callable[[dict[str, str]], str] | None = None,
    after_stop: Callable[[list[str]], None] | None = None,
) -> JobArray:
    """Run `target(a)` for each of `args` as one job array (a task is requeued on preemption
    and at its time limit: `target` must be safe to run again). Unless detached, wait: a
    progress line (`progress_line(states)`, else the states) whenever it changes; on Ctrl-C,
    cancel the tasks, wait for them to end, call `after_stop(their ids)`, and re-raise."""
    launcher = env.launcher
    assert isinstance(launcher, SlurmLauncher)
    folder = launcher.folder(env.tracker)
    array = submit(target, [(a,) for a in args], launcher.options, folder, name="sweep-worker")
    env.progress.say(submitted(array))
    if launcher.detach:
        return array
    try:
        results = wait(array, Watch(env.progress, array, progress_line), poll_s=launcher.poll_s)
    except BaseException:
        with signals_held():
            cancel(array)  # wait() did already, unless the interrupt came after it
            settle(array)
            if after_stop is not None:
                with contextlib.suppress(Exception):  # best effort: the next command cleans up
                    after_stop(array.ids)
        raise
    for r in results:
        if not r.ok:
            env.progress.warn(f"worker {r.job_id} ended {r.state}{why(r)} (log: {r.log})")
    return array
