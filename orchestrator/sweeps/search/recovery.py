"""Trials whose worker died: failed, retried once, their MLflow runs ended KILLED.

Two ways to notice a dead worker. On an RDB storage, heartbeats: Optuna fails a trial whose
heartbeat stopped (`fail_stale_trials`) and calls the storage's stale-trial callback,
`StaleTrials`. On the journal storage (no heartbeats), the worker's host and pid recorded on
the trial: a dead pid on this host fails the trial, and the same callback runs. A worker that
died as Optuna created its trial, before either was recorded, leaves a trial that names no
worker: `context.Unnamed` finds it, and it is failed once it has stayed so for a while. Either way nothing stays
RUNNING, in Optuna or in MLflow, once its process is gone.
"""

from __future__ import annotations

import os
import socket
import warnings
from typing import TYPE_CHECKING

from ... import tracking as T
from ...errors import UserError
from .attrs import ATTR_REASON, ATTR_RUN, ATTR_WORKER

if TYPE_CHECKING:
    from .context import SearchContext


def worker_tag(trial_number: int) -> str:
    """Recorded on a trial (`sweep.worker`) by the process that trains it."""
    return f"{socket.gethostname()}:{os.getpid()}:{trial_number}"


class StaleTrials:
    """The storage's `heartbeat_stale_trial_callback`: retry the trial once (Optuna's
    `RetryHeartbeatStaleTrialCallback`) and end its MLflow run KILLED. It needs only the
    tracker, so it exists before the storage and the study it is given to."""

    def __init__(self, tracker: T.Tracker):
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        self.tracker = tracker
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=1)

    def __call__(self, study, frozen) -> None:
        self.retry(study, frozen)
        run_id = frozen.user_attrs.get(ATTR_RUN)
        if run_id:
            kill_run(self.tracker, run_id, frozen)


def kill_run(tracker: T.Tracker, run_id: str, frozen) -> None:
    """End the MLflow run of a trial whose worker died (if it still shows RUNNING)."""
    try:
        run = tracker.get_run(run_id)
    except UserError:
        return
    if run.state is T.RunState.RUNNING:
        who = frozen.user_attrs.get(ATTR_WORKER, "?").rsplit(":", 1)[0]
        why = frozen.user_attrs.get(ATTR_REASON) or f"worker {who} died mid-trial"
        tracker.end_run(
            run_id,
            T.RunState.KILLED,
            f"{why}; Optuna marked trial {frozen.number} FAIL and retries it once",
        )


def fail_unnamed(ctx: SearchContext, on_stale: StaleTrials) -> None:
    """Fail (and retry once) the trials whose worker died as Optuna created them."""
    from optuna.trial import TrialState

    running = ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in ctx.unnamed.overdue(running):
        why = (
            f"its worker died as Optuna created it (no worker named in {ctx.unnamed.limit_s:.0f} s)"
        )
        fail_and_retry(ctx, t, why, on_stale)


def has_heartbeat(storage) -> bool:
    get = getattr(storage, "get_heartbeat_interval", None)  # RDBStorage's, when it has one
    return get is not None and get() is not None


def reconcile(ctx: SearchContext) -> None:
    """Fail trials of dead workers, retry them once, and end their MLflow runs KILLED (also
    runs of trials another process already failed, and this host's orphaned runs)."""
    import optuna
    from optuna.trial import TrialState

    if has_heartbeat(ctx.storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(ctx.study)  # calls StaleTrials for each
    else:
        fail_dead_local(ctx, StaleTrials(ctx.tracker))
    fail_unnamed(ctx, StaleTrials(ctx.tracker))
    by_number = {t.number: t for t in ctx.study.get_trials(deepcopy=False)}
    children = ctx.tracker.children(ctx.parent_id)
    for run in children:
        if run.state is not T.RunState.RUNNING:
            continue
        t = by_number.get(int(run.tags.get(T.TAG_TRIAL, "-1")))
        if t is not None and t.state != TrialState.RUNNING:
            kill_run(ctx.tracker, run.run_id, t)
    T.reap_stale(ctx.tracker, children)


def dead_local_pid(frozen) -> int | None:
    """The pid of the worker of a RUNNING trial if it ran on this host and is gone."""
    host, _, rest = str(frozen.user_attrs.get(ATTR_WORKER, "")).partition(":")
    pid, _, number = rest.partition(":")
    if host != socket.gethostname() or number != str(frozen.number) or not pid.isdigit():
        return None
    if int(pid) == os.getpid() or T.alive(int(pid)):
        return None
    return int(pid)


def fail_dead_local(ctx: SearchContext, on_stale: StaleTrials) -> None:
    """What heartbeats do on an RDB storage, for the journal: a trial whose worker process on
    this host is gone is failed (by one process only) and handed to `on_stale`."""
    from optuna.trial import TrialState

    for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = dead_local_pid(t)
        if pid is not None:
            fail_and_retry(ctx, t, f"worker process {pid} died mid-trial", on_stale)


def fail_and_retry(ctx: SearchContext, frozen, reason: str, on_stale: StaleTrials) -> bool:
    """Fail a RUNNING trial whose worker is known to be gone (once, whoever else tries) and
    hand it to `on_stale` (retried once, its run ended KILLED). Whether this call failed it."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = ctx.storage
    study_id = storage.get_study_id_from_name(ctx.study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
    try:
        # the reason first: a finished trial's attributes can no longer be set
        storage.set_trial_user_attr(trial_id, ATTR_REASON, reason)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False  # another worker got there first
    on_stale(ctx.study, storage.get_trial(trial_id))
    return True
