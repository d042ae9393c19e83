"""The vocabulary of the store: run states, roles and tag names.

A run's *state* is what `sweep` means by it (complete, pruned, failed, ...); MLflow only
knows four statuses. `RunState.status` is the one place that maps the first onto the
second, so no other module writes an MLflow status by hand.
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_EXPERIMENT = "char-gpt"  # the MLflow experiment when --experiment is not given


class RunState(StrEnum):
    """How a run ended (or that it still runs), as recorded in the `sweep.state` tag."""

    RUNNING = "running"
    COMPLETE = "complete"  # trained to the end, metrics and artifacts stored
    PRUNED = "pruned"  # stopped early by the pruner: a normal end for a search trial
    DUPLICATE = "duplicate"  # not trained: another process trains the same config
    REUSED = "reused"  # not trained: a finished run of the same identity stands for it
    FAILED = "failed"  # diverged, crashed or could not store its results
    KILLED = "killed"  # interrupted (Ctrl-C, SIGTERM, SIGHUP) or its process died

    @property
    def status(self) -> str:
        """The MLflow run status that stands for this state."""
        return _STATUS[self]

    @property
    def finished(self) -> bool:
        return self is not RunState.RUNNING

    @property
    def has_result(self) -> bool:
        """The run holds a trained model's numbers: its own, or (reused) its source's."""
        return self in (RunState.COMPLETE, RunState.REUSED)

    @classmethod
    def from_run(cls, status: str, tag: str | None) -> RunState:
        """The state of a run from its MLflow status and its `sweep.state` tag. A reopened
        run (RUNNING again) is running whatever its old tag says."""
        if status == "RUNNING":
            return cls.RUNNING
        if tag:
            try:
                return cls(tag)
            except ValueError:
                pass
        return _FROM_STATUS.get(status, cls.FAILED)


_STATUS = {
    RunState.RUNNING: "RUNNING",
    RunState.COMPLETE: "FINISHED",
    RunState.PRUNED: "FINISHED",
    RunState.DUPLICATE: "FINISHED",
    RunState.REUSED: "FINISHED",
    RunState.FAILED: "FAILED",
    RunState.KILLED: "KILLED",
}
_FROM_STATUS = {
    "FINISHED": RunState.COMPLETE,
    "FAILED": RunState.FAILED,
    "KILLED": RunState.KILLED,
    "SCHEDULED": RunState.RUNNING,
}
FINISHED_STATUS = _STATUS[RunState.COMPLETE]  # for search filters on attributes.status


class Role(StrEnum):
    """What a run is in a sweep (the `sweep.role` tag)."""

    BASELINE = "baseline"  # a baseline: one run, or the parent of its seeds
    BASELINE_SEED = "baseline-seed"
    ABLATION = "ablation"  # parent `ablate:<knob>`
    ABLATION_RUN = "ablation-run"
    SEARCH = "search"  # parent `search:<study>`
    SEARCH_TRIAL = "search-trial"
    CONFIRM = "confirm"  # parent `confirm:<study>`
    CONFIRM_RUN = "confirm-run"

    @property
    def is_sweep(self) -> bool:
        return self in (Role.ABLATION, Role.SEARCH, Role.CONFIRM)

    @property
    def trains(self) -> bool:
        """Runs of this role hold a trained model (metrics, samples, checkpoint)."""
        return self in (
            Role.BASELINE,
            Role.BASELINE_SEED,
            Role.ABLATION_RUN,
            Role.SEARCH_TRIAL,
            Role.CONFIRM_RUN,
        )


SWEEP_ROLES = tuple(r for r in Role if r.is_sweep)

# Tag names.
TAG_ROLE = "sweep.role"
TAG_KNOB = "sweep.knob"
TAG_VALUE = "sweep.value"
TAG_SEED = "sweep.seed"
TAG_SEEDS = "sweep.seeds"  # a baseline's number of seeds
TAG_SEED_LIST = "sweep.seed_list"  # a baseline's seeds, comma-separated
TAG_BASELINE = "sweep.baseline_run_id"
TAG_BASELINE_VALUE = "sweep.baseline_value"
TAG_STATE = "sweep.state"
TAG_REASON = "sweep.reason"
TAG_FAILED_STEP = "sweep.failed_step"
TAG_PRUNED_STEP = "sweep.pruned_step"
TAG_CONFIG_HASH = "sweep.config_hash"
TAG_PID = "sweep.pid"
TAG_HOST = "sweep.host"
TAG_FUSED_GROUP = "sweep.fused_group"  # a run trained in a fused group: the group's id
TAG_FUSED_MEMBERS = "sweep.fused_members"  # how many runs that group trained
TAG_SLURM_JOB = "sweep.slurm_job"  # the Slurm job (array task: <array>_<task>) it ran in
TAG_TRIAL = "sweep.trial"
TAG_STUDY = "sweep.study"
TAG_SPACE = "sweep.space"
TAG_STORAGE = "sweep.storage"  # where a search's Optuna study lives (no password)
TAG_RETRY_OF = "sweep.retry_of"
TAG_DUPLICATE_OF = "sweep.duplicate_of"
TAG_BEST_TRIAL = "sweep.best_trial"
TAG_BEST_COMMAND = "sweep.best_command"
TAG_SEARCH_RUN = "sweep.search_run_id"  # a confirm parent: the search it confirms
TAG_DEVICE = "sweep.device"
TAG_AMP = "sweep.amp_dtype"
TAG_THREADS = "sweep.threads"  # torch threads it trained with (not part of its identity)
TAG_CODE_VERSION = "sweep.code_version"  # training code + torch version: what reuse matches
TAG_GIT_COMMIT = "sweep.git_commit"
TAG_VERSION_PREFIX = "sweep.version."  # + package name: sweep, torch, mlflow, optuna
TAG_REUSED_FROM = "sweep.reused_from"  # a link run: the run whose result stands for it
TAG_REUSED_NAME = "sweep.reused_from_name"
TAG_VALUES = "sweep.values"  # an ablation's values, comma-separated
TAG_ALPHA = "sweep.alpha"  # a sweep's test level
TAG_MARGIN = "sweep.margin"  # a sweep's practical margin (nats)
# written by versions before the anytime verdicts (the looks of the old --until-clear:
# {"n0": .., "max_seeds": .., "values": [..]}); read only to say so under the table
TAG_SEQUENTIAL = "sweep.sequential"
TAG_TABLE_SEEDS = "sweep.table_baseline_seeds"  # the baseline seeds its last table used
TAG_HISTORY = "sweep.history"  # earlier sweeps whose rows pool the noise scale (run ids)
# its rows' best val loss by seed as JSON ({value: {seed: loss}}), so that a later sweep on
# the same baseline reads them as history without a query for each sweep's runs
# the rows of each family of a sweep's table (JSON lists of values, in the order first
# tabled): a family's rows share alpha (Bonferroni), so a row added later never changes the
# level of a row decided before it
TAG_FAMILIES = "sweep.families"
TAG_SEED_LOSSES = "sweep.seed_losses"
TAG_BEST_VALUE = "sweep.best_value"  # a sweep's lowest row, at a glance in the runs table
TAG_BEST_VERDICT = "sweep.best_verdict"
PARENT_TAG = "mlflow.parentRunId"
