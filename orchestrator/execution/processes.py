"""Local worker processes: started (spawn), waited for, and stopped cleanly.

Ctrl-C (SIGINT to the process group), SIGTERM or SIGHUP: a worker ends what it runs (its
target turns the first signal into KeyboardInterrupt / Interrupted, later ones are ignored)
and exits 128 + the signal (130, 143, 129); the main process sends SIGTERM to the workers still alive, waits for them
(SIGKILL past a grace period), then the caller cleans up after any that had to be killed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import Interrupted
from ..progress import Progress

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WORKER_GRACE_S = 120.0  # to end a trial: upload what it has, end the run KILLED


def interrupt_once() -> None:
    """In a worker: the first of SIGINT / SIGTERM / SIGHUP interrupts what it runs; later
    ones are ignored, so Ctrl-C and the main process's SIGTERM arriving together cannot cut
    that clean-up short."""
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


# A stop signal; a Slurm task's requeue signal (submitit's USR2) and its re-raise (ALRM)
GATED = (*STOP_SIGNALS, signal.SIGUSR2, signal.SIGALRM)


class SignalGate:
    """Signals held back while a trial is being booked, let through while it trains.

    Inside `closed()` a signal of GATED is noted, not acted on, and handed to its usual
    handler (`signal.raise_signal`) when the block ends; inside `open()`, nested in it, the
    usual handlers act, a noted signal first. A search worker closes the gate around Optuna's
    `optimize` and opens it in the objective once the trial names its worker: a signal can
    no longer land between Optuna creating a trial and the trial knowing who runs it, nor
    while Optuna records its end, which would leave it RUNNING with nobody to end it (a
    trial with no heartbeat yet is never stale to Optuna)."""

    def __init__(self) -> None:
        self.usual: dict[int, Any] | None = None  # the handlers, while closed
        self.noted: list[int] = []

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.usual = {sig: signal.signal(sig, self._note) for sig in GATED}
        try:
            yield
        finally:
            usual, self.usual = self.usual, None
            for sig, handler in usual.items():
                signal.signal(sig, handler)
            self._deliver()

    @contextlib.contextmanager
    def open(self) -> Iterator[None]:
        if self.usual is None:  # not closed (or not the main thread)
            yield
            return
        for sig, handler in self.usual.items():
            signal.signal(sig, handler)
        try:
            self._deliver()
            yield
        finally:
            for sig in self.usual:
                signal.signal(sig, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.noted.append(signum)

    def _deliver(self) -> None:
        noted, self.noted = self.noted, []
        first: BaseException | None = None
        for sig in noted:  # every one reaches its handler (a Slurm task records them all)
            try:
                signal.raise_signal(sig)
            except BaseException as e:  # the first one is raised below
                first = first or e
        if first is not None:
            raise first


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


def run_processes(
    target: Callable[[Any], None],
    args: Sequence[Any],
    progress: Progress,
    *,
    name: str = "sweep-worker",
    describe: str = "",
    after_stop: Callable[[], None] | None = None,
) -> list[int | None]:
    """Run `target(a)` for each of `args` in its own spawned process and wait for them all;
    on an interrupt, stop them (`stop`), call `after_stop`, and re-raise. Returns the exit
    codes (a non-zero one is warned about)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = []
    for i, a in enumerate(args):
        p = ctx.Process(target=target, args=(a,), name=f"{name}-{i}")
        p.start()
        procs.append(p)
    pids = ", ".join(str(p.pid) for p in procs)
    progress.say(f"{len(procs)} workers started{describe}: pids {pids}")
    try:
        for p in procs:
            p.join()
    except BaseException:
        with signals_held():
            stop(procs, progress)
            if after_stop is not None:
                with contextlib.suppress(Exception):  # best effort: the next command cleans up
                    after_stop()
        raise
    for p in procs:
        if p.exitcode != 0:
            progress.warn(f"{p.name} (pid {p.pid}) exited with code {p.exitcode}")
    return [p.exitcode for p in procs]


def stop(procs: list, progress: Progress, grace_s: float = WORKER_GRACE_S) -> None:
    """SIGTERM to the live workers; wait for them to end what they run (SIGKILL past
    `grace_s`)."""
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: the worker's handler ends its trial
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            progress.warn(f"{p.name} (pid {p.pid}) did not stop in {grace_s:.0f} s: killed")
            p.kill()
            p.join(10)
