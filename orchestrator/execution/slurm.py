"""Slurm job arrays through submitit: N calls of one picklable callable as ONE array.

Generic: nothing here knows Optuna or MLflow. The caller hands over a callable and its
calls; `submit` writes one `sbatch` job array (task i runs call i), `wait` polls the tasks'
states (sacct, through submitit) and returns what each call returned or why it did not,
`cancel` ends them (`scancel`).

Requeue: every task is submitted requeueable (`--requeue`) with submitit's warning signal
(`--signal=USR2@signal_delay_s`). When Slurm preempts a task, or its time limit nears,
submitit calls the callable's `checkpoint(*args, **kwargs)`, which returns the
`submitit.helpers.DelayedSubmission` to run instead, and requeues the task: the same array
task id runs that submission when Slurm starts it again. A callable without a `checkpoint`
method is wrapped in `Rerun`, which runs it again from the start with the same arguments, so
it must be safe to run twice (resume from shared state, as a study's worker loop does).
A task stops being requeued after `max_timeouts` time-outs (preemptions do not count).

Where the files go: submitit keeps each task's pickled call, its result and its logs under
`<folder>/<array id>_<task>/` (`..._submitted.pkl`, `..._0_result.pkl`, `..._0_log.out`,
`..._0_log.err`), and the array's batch script in `<folder>/<array id>/`. The nodes read and write there, so the folder must be on a file system
they share with the submitting machine; `jobs_folder(store_dir)` is `sweep-slurm/` beside
the MLflow store (for a tracking server: in the current directory), like sweep-tables/.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Interrupted, UserError
from .processes import STOP_SIGNALS
from .slurm_options import SlurmOptions

FOLDER_NAME = "sweep-slurm"

# Slurm's job states (sacct's first word), split from one string (noqa: SIM905) because
# some share their names with MLflow's run statuses, which only tracking/schema.py may
# spell as literals (tests/test_layout.py).
# A task in one of these is not over yet (UNKNOWN: sacct has no record of it yet).
ACTIVE = frozenset(
    "UNKNOWN PENDING CONFIGURING RUNNING COMPLETING REQUEUED REQUEUE_HOLD REQUEUE_FED "  # noqa: SIM905
    "RESIZING SUSPENDED STOPPED SIGNALING STAGE_OUT READY".split()
)
# A run that ended in one of these wrote its result (or its error) where submitit reads it.
ENDED_A_CALL = frozenset("COMPLETED FAILED".split())  # noqa: SIM905


def check_available() -> None:
    """Refuse, in one line, where this machine cannot submit to Slurm."""
    missing = [cmd for cmd in ("sbatch", "sacct", "scancel") if shutil.which(cmd) is None]
    if missing:
        raise UserError(
            f"--launcher slurm: no `{missing[0]}` on the PATH (run sweep on a Slurm login "
            "node, or use the local launcher)"
        )


def jobs_folder(store_dir: Path) -> Path:
    """Where submitit's files go: `sweep-slurm/` beside the MLflow store."""
    return Path(store_dir) / FOLDER_NAME


@dataclass(frozen=True)
class Rerun:
    """`fn(*args, **kwargs)` as a submitit checkpointable callable: a preempted or timed-out
    task runs it again from the start with the same arguments.

    The call travels as cloudpickle bytes, unpickled only when the task runs. submitit
    installs its signal handlers (USR2: checkpoint and requeue) after it has unpickled the
    task, and unpickling `fn` and its arguments imports their modules (torch: seconds); a
    preemption in those seconds killed the task (FAILED, never requeued). Now the task's
    unpickling imports this module alone, and the rest is imported under submitit's
    handlers."""

    payload: bytes

    @classmethod
    def of(cls, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Rerun:
        import cloudpickle

        return cls(cloudpickle.dumps((fn, args, kwargs)))

    def __call__(self) -> Any:
        import cloudpickle

        fn, args, kwargs = cloudpickle.loads(self.payload)
        return fn(*args, **kwargs)

    def checkpoint(self) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


@dataclass(frozen=True)
class JobArray:
    """What `submit` sent: one submitit job per call, in the order of the calls."""

    jobs: tuple[Any, ...]
    folder: Path

    @property
    def ids(self) -> list[str]:
        """Slurm ids of the tasks, `<array id>_<task>` (a bare id for a single call)."""
        return [job.job_id for job in self.jobs]

    @property
    def array_id(self) -> str:
        return self.ids[0].split("_")[0]


@dataclass(frozen=True)
class TaskResult:
    """How one call ended: Slurm's final state, and what it returned or why not. `log`:
    the task's stderr (errors, submitit's warnings), `out`: its stdout (submitit's account
    of each run: checkpoint, requeue)."""

    job_id: str
    state: str
    value: Any = None
    error: str | None = None
    log: Path | None = None
    out: Path | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def submit(
    fn: Callable[..., Any],
    calls: Sequence[Sequence[Any]],
    options: SlurmOptions,
    folder: Path,
    *,
    name: str = "sweep",
) -> JobArray:
    """Submit `fn(*call)` for each call as one job array; return at once (sbatch's ids).

    `fn` and the calls' arguments are pickled (cloudpickle) into `folder` and unpickled on
    the node: `fn` must be importable there (the package installed in an environment the
    nodes share) or picklable by value. The job runs with the submitting environment
    (sbatch's default --export=ALL) and this Python (`sys.executable`).
    """
    if not calls:
        raise ValueError("submit: no calls")
    check_available()
    import submitit
    from submitit.core.utils import FailedJobError

    folder = Path(folder).resolve()
    # only its owner reads it: the pickled calls may hold a database password (--storage)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=options.max_timeouts)
    executor.update_parameters(**options.executor_parameters(name))
    own = callable(getattr(fn, "checkpoint", None))  # checkpoints itself: as it is
    # clean_env: submitting from inside a Slurm job must not hand its SLURM_* to the array.
    # sbatch's own stderr would be printed by submitit as well: the error below says it.
    try:
        with (
            submitit.helpers.clean_env(),
            contextlib.redirect_stderr(io.StringIO()),
            executor.batch(),
        ):
            jobs = [
                executor.submit(fn, *call) if own else executor.submit(Rerun.of(fn, *call))
                for call in calls
            ]
    except FailedJobError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise UserError(f"sbatch refused the job array: {lines[-1] if lines else e}") from None
    return JobArray(tuple(jobs), folder)


def _queued(array: JobArray) -> dict[str, str] | None:
    """The array's tasks slurmctld still holds, with their live states (squeue: no lag);
    None when squeue did not answer."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i %T", "-j", array.array_id],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:  # invalid: all purged
        return None
    pairs = (line.split() for line in out.stdout.splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2 and p[1] in ACTIVE}


def _succeeded(job: Any) -> bool:
    """The task's result file holds a result (a success is never stale: it ends the task)."""
    return job.paths.result_pickle.exists() and job.exception() is None


def states(array: JobArray) -> dict[str, str]:
    """Each task's Slurm state now (id -> COMPLETED, RUNNING, ...), in call order.

    Tasks still queued get their live state from squeue. A task that left the queue gets
    its final state from sacct (one call for the array), which lags seconds behind the
    controller: meanwhile it still reads as active, unless the task left its result
    (COMPLETED). PREEMPTED is final only for a task no longer queued (a preemption that
    cancels); a requeued one is queued again (PENDING).
    """
    queued = _queued(array)
    gone = [job for job in array.jobs if queued is None or job.job_id not in queued]
    final: dict[str, str] = {}
    if gone:
        gone[0].get_info(mode="force")  # one sacct call refreshes every registered job
    for job in gone:
        state = (job.watcher.get_state(job.job_id, mode="cache").split() or ["UNKNOWN"])[0]
        if state == "PREEMPTED" and queued is None:
            state = "UNKNOWN"  # requeued or not: squeue will tell
        if state in ACTIVE and queued is not None and _succeeded(job):
            state = "COMPLETED"  # sacct has not caught up yet
        final[job.job_id] = state
    return {job.job_id: final.get(job.job_id) or queued[job.job_id] for job in array.jobs}


def summary(now: Mapping[str, str]) -> str:
    """'3 tasks: 1 RUNNING, 2 PENDING' for a progress line."""
    counts = Counter(now.values())
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"{len(now)} task{'s' if len(now) != 1 else ''}: {parts}"


def task_result(job: Any, state: str) -> TaskResult:
    logs = {"log": job.paths.stderr, "out": job.paths.stdout}
    # Only a finished call's pickle is read (a requeued task may hold a stale one); for a
    # COMPLETED task submitit waits a while for it (a shared file system can lag).
    if state == "COMPLETED" or (state in ENDED_A_CALL and job.paths.result_pickle.exists()):
        try:
            return TaskResult(job.job_id, state, value=job.result(), **logs)
        except Exception as e:
            return TaskResult(job.job_id, state, error=str(e) or type(e).__name__, **logs)
    return TaskResult(job.job_id, state, error=f"{state}: no result (see {logs['log']})", **logs)


def wait(
    array: JobArray,
    on_progress: Callable[[dict[str, str]], None] | None = None,
    *,
    poll_s: float = 5.0,
    cancel_on_interrupt: bool = True,
) -> list[TaskResult]:
    """Poll until no task is active; return one TaskResult per call, in call order.

    `on_progress(states)` is called after each poll (every `poll_s`). A requeued task is
    active until its last run ends. Ctrl-C (or any exception) while waiting cancels the
    array's tasks when `cancel_on_interrupt`, then propagates.
    """
    try:
        while True:
            now = states(array)
            if on_progress is not None:
                on_progress(now)
            if not ACTIVE.intersection(now.values()):
                break
            time.sleep(poll_s)
    except BaseException:
        if cancel_on_interrupt:
            cancel(array)
        raise
    return [task_result(job, now[job.job_id]) for job in array.jobs]


def cancel(array: JobArray) -> None:
    """`scancel` every task of the array, pending or running. Slurm sends SIGTERM, then
    SIGKILL after its KillWait; `states()` shows CANCELLED. Never raises for a task that
    already ended."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["scancel", array.array_id], capture_output=True, check=False, timeout=60)


def settle(array: JobArray, timeout_s: float = 120.0, poll_s: float = 2.0) -> dict[str, str]:
    """Wait (at most `timeout_s`) until no task of the array is active, e.g. after `cancel`:
    Slurm's SIGTERM lets a task end what it runs before KillWait's SIGKILL. The states."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = states(array)
        if not ACTIVE.intersection(now.values()) or time.monotonic() > deadline:
            return now
        time.sleep(poll_s)


REQUEUE_SIGNAL = signal.SIGUSR2  # submitit's (--signal=USR2@delay): checkpoint and requeue


class TaskSignals:
    """Signals inside an array task, installed by the task's callable (after submitit's own).

    The first of SIGINT, SIGTERM, SIGHUP (scancel, a preemption without a warning signal)
    and SIGUSR2 (submitit's: preempted, or the time limit is near) interrupts what the task
    runs where it is (KeyboardInterrupt, or Interrupted: a run ends KILLED with the reason);
    later ones are noted and ignored, so nothing cuts that clean-up short. submitit's own
    USR2 handler would checkpoint, requeue and exit at once, mid-run; it is kept and called
    by `requeue_if_asked` once the task has ended what it ran.

    An exception raised where Python cannot propagate it (the handler ran inside a weakref
    callback or a finalizer, which the garbage collector calls anywhere) is printed as
    "Exception ignored" and dropped: the task would go on, deaf to the signal, until
    KillWait's SIGKILL. So such a drop (sys.unraisablehook) raises it again 50 ms later
    (SIGALRM), in whatever runs then, until it propagates."""

    def __init__(self) -> None:
        self.fired: list[signal.Signals] = []
        self.requeue = signal.getsignal(REQUEUE_SIGNAL)
        for sig in (*STOP_SIGNALS, REQUEUE_SIGNAL):
            signal.signal(sig, self._interrupt)
        signal.signal(signal.SIGALRM, self._again)
        self._unraisable_before = sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.fired.append(signal.Signals(signum))
        if len(self.fired) == 1:
            self._raise()

    def _raise(self) -> None:
        first = self.fired[0]
        if first == signal.SIGINT:
            raise KeyboardInterrupt()
        if first == REQUEUE_SIGNAL:
            raise Interrupted("SIGUSR2: preempted or near its time limit; Slurm requeues the task")
        raise Interrupted(first.name)

    def _again(self, signum: int, frame: Any) -> None:
        if self.fired:
            self._raise()

    def _unraisable(self, unraisable: Any) -> None:
        if self.fired and isinstance(unraisable.exc_value, (Interrupted, KeyboardInterrupt)):
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # raised again, where it propagates
        self._unraisable_before(unraisable)

    @property
    def requeued(self) -> bool:
        return REQUEUE_SIGNAL in self.fired and callable(self.requeue)

    def requeue_if_asked(self) -> None:
        """After USR2: submitit's checkpoint-and-requeue (`scontrol requeue`, then exit)."""
        if self.requeued:
            self.requeue(REQUEUE_SIGNAL, None)
