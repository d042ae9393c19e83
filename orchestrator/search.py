"""Optuna studies around the recorded baseline: space, sampler, pruner, storage, workers.

Every trial is the baseline's recorded config with only the searched keys changed, trained
by `runner.train_run` as a nested MLflow child run `trial-<number>` of a parent
`search:<study>`. The val loss of each eval is reported to Optuna; a pruned trial ends
PRUNED in Optuna and FINISHED/`pruned` in MLflow; a diverging one ends FAIL with its reason.

Storage: an Optuna journal file next to the MLflow store by default (several local worker
processes, no "database is locked"), or any RDB URL (`postgresql://...`) with heartbeats so
that a worker killed mid-trial has its trial failed and retried once, on any machine.

`--trials N` is a budget for the whole study: workers (local or remote, re-runs included)
stop once the study holds N finished trials. What counts: every trial except a FAIL that
was retried (its retry stands for it) and a rare "surplus" trial that lost a race for the
last slot (it fails at once, untrained, and is marked `sweep.surplus`).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.errors import ConfigError
from model.train import TrainerHooks

from . import tracking as T
from .ablate import heads_for
from .baseline import baseline_config
from .config import FIELDS, RunConfig, baseline_command, coerce, read_toml, unknown_key_message
from .errors import UserError
from .progress import Progress
from .runner import Interrupted, train_run

if TYPE_CHECKING:
    import pandas as pd

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("hyperband", "median", "none")
JOURNAL_NAME = "optuna-journal.log"
HEARTBEAT_ENV = "SWEEP_HEARTBEAT_S"  # seconds between heartbeats on an RDB storage
DEFAULT_HEARTBEAT_S = 15
ROLE_SEARCH = "search"
ROLE_TRIAL = "search-trial"
# Study user attrs (shared by every worker through the storage).
ATTR_PARENT = "sweep.mlflow_parent_run_id"
ATTR_BASELINE = "sweep.baseline_run_id"
ATTR_SPACE = "sweep.space"
# Trial user attrs.
ATTR_RUN = "sweep.mlflow_run_id"
ATTR_WORKER = "sweep.worker"  # host:pid:trial-number of the process training it
ATTR_REASON = "sweep.fail_reason"
ATTR_SURPLUS = "sweep.surplus"
ATTR_DUPLICATE = "sweep.duplicate_of"
NOT_SEARCHABLE = {"device", "save_best", "seed"}


# -- the space ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One searched key: a float/int range or a list of choices."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} {self.kind} [{self.low}, {self.high}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Space:
    label: str
    params: tuple[Param, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def fingerprint(self) -> str:
        return json.dumps([p.describe() for p in self.params])

    def grid(self) -> dict[str, list]:
        ranges = [p.name for p in self.params if p.kind != "categorical"]
        if ranges:
            raise UserError(
                f"--sampler grid needs a list for every key, but space {self.label} gives a range for "
                f"{', '.join(ranges)}; write `values = [...]` for them"
            )
        return {p.name: list(p.choices) for p in self.params}


def space_names() -> list[str]:
    root = resources.files("experiments").joinpath("spaces")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_space(name_or_path: str) -> Space:
    label, doc = read_toml(name_or_path, "space", space_names(), "experiments.spaces")
    return parse_space(label, doc)


def parse_space(label: str, doc: dict[str, Any]) -> Space:
    """Validate a space document; every error is one line that names the key."""
    if not doc:
        raise UserError(
            f"space {label} is empty: give at least one key, e.g. [dropout] low = 0.0 high = 0.3"
        )
    params = []
    for key, spec in doc.items():
        where = f"space {label}: {key}"
        if key not in FIELDS:
            raise UserError(f"space {label}: {unknown_key_message(key)}")
        if key in NOT_SEARCHABLE:
            raise UserError(f"{where}: this key cannot be searched")
        if not isinstance(spec, dict):
            raise UserError(
                f"{where}: expected a table, e.g. [{key}] low = ... high = ... or choices = [...]"
            )
        unknown = set(spec) - {"low", "high", "log", "step", "choices", "values", "type"}
        if unknown:
            raise UserError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown))}; use low/high/log/step or choices"
            )
        typ = FIELDS[key][1]
        listed = spec.get("choices", spec.get("values"))
        if listed is not None:
            if not isinstance(listed, list) or not listed:
                raise UserError(f"{where}: empty choices; give at least one value")
            try:
                values = tuple(dict.fromkeys(coerce(key, v) for v in listed))
            except ConfigError as e:
                raise UserError(f"{where}: {e.message}") from None
            params.append(Param(key, "categorical", choices=values))
            continue
        if "low" not in spec or "high" not in spec:
            raise UserError(f"{where}: give low and high, or choices = [...]")
        if typ not in (int, float):
            raise UserError(f"{where}: {key} is not a number; give choices = [...]")
        try:
            low, high = coerce(key, spec["low"]), coerce(key, spec["high"])
        except ConfigError as e:
            raise UserError(f"{where}: {e.message}") from None
        if not low < high:
            raise UserError(f"{where}: empty range: low ({low}) must be below high ({high})")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise UserError(f"{where}: a log range needs low > 0 (got {low})")
        step = spec.get("step")
        if step is not None and (not isinstance(step, (int, float)) or step <= 0 or log):
            raise UserError(f"{where}: step must be a number > 0 and cannot be combined with log")
        params.append(Param(key, "int" if typ is int else "float", low, high, log, step))
    return Space(label, tuple(params))


def anchored(space: Space, base: RunConfig) -> Space:
    """The space widened so the baseline's own values are in it (the baseline is trial 0)."""
    flat = base.to_flat()
    out = []
    for p in space.params:
        v = flat[p.name]
        if p.kind == "categorical":
            out.append(p if v in p.choices else replace(p, choices=(*p.choices, v)))
        elif p.step is None:
            low, high = min(p.low, v), max(p.high, v)
            if p.log and low <= 0:
                low = p.low  # a log range cannot hold a 0 baseline: trial 0 uses it anyway
            out.append(replace(p, low=low, high=high))
        else:
            out.append(p)
    return Space(space.label, tuple(out))


def trial_config(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """The baseline with only the searched keys changed (n_head follows n_embed)."""
    changes = dict(params)
    if "n_embed" in changes and "n_head" not in changes:
        changes["n_head"] = heads_for(int(changes["n_embed"]), base.gpt.n_head)
    return base.replace(**changes)


def params_label(params: dict[str, Any]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if v and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.4g}"
        return str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in sorted(params.items()))


# -- sampler, pruner, storage ------------------------------------------------------------


def make_sampler(name: str, space: Space, seed: int | None, n_trials: int | None = None):
    import optuna

    if name == "tpe":
        startup = 10 if n_trials is None else max(3, min(10, n_trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise UserError(f"unknown sampler '{name}'; choose one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str, base: RunConfig):
    import optuna

    every, total = base.train.eval_every, base.train.max_steps
    if name == "hyperband":
        # No verdict before a third of the run: early in training (warmup, bigger models that
        # start slower) curves still cross. With a ninth, benchmarks/search_efficiency.py saw
        # the grid's best config pruned and never found again for one sampler seed in three.
        first = min(total, max(every, (total // 3) // every * every))
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=total, reduction_factor=3
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner '{name}'; choose one of: {', '.join(PRUNERS)}")


def heartbeat_seconds() -> int:
    raw = os.environ.get(HEARTBEAT_ENV, str(DEFAULT_HEARTBEAT_S))
    try:
        value = int(raw)
        if value < 1:
            raise ValueError
    except ValueError:
        raise UserError(f"{HEARTBEAT_ENV}={raw}: must be a whole number of seconds >= 1") from None
    return value


def journal_path(tracker: T.Tracker) -> Path:
    return tracker.store_dir / JOURNAL_NAME


def open_storage(url: str | None, tracker: T.Tracker, on_stale=None):
    """Default: a journal file next to the MLflow store; `*.log` path: a journal there;
    a database URL: RDBStorage with heartbeats (a killed worker's trial fails and is retried)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None or url.endswith(".log") or url.startswith("journal:"):
        path = (
            journal_path(tracker)
            if url is None
            else Path(url.removeprefix("journal:")).expanduser()
        )
        if not path.parent.is_dir():
            raise UserError(f"directory for the Optuna journal does not exist: {path.parent}")
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise UserError(
            f"--storage {url}: expected postgresql://user:pass@host/db (or another database URL) or a .log file"
        )
    hb = heartbeat_seconds()
    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=hb,
                grace_period=max(2, 2 * hb),
                heartbeat_stale_trial_callback=on_stale,
                engine_kwargs={"pool_pre_ping": True},
            )
        except Exception as e:  # bad URL, unreachable server, missing driver
            # Workers starting together on a fresh database race to create Optuna's tables:
            # the loser sees a unique violation and finds the tables there on the next try.
            if (
                "already exists" in str(e)
                or "UniqueViolation" in str(e)
                or "duplicate key" in str(e)
            ):
                time.sleep(0.5 + attempt)
                continue
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"cannot open the Optuna storage {redact(url)}: {first}") from None
    raise UserError(
        f"cannot open the Optuna storage {redact(url)}: its tables could not be created"
    )


def redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def has_heartbeat(storage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


# -- the budget ----------------------------------------------------------------------------


def counted(trials: list) -> list:
    """Trials that count against --trials: all but retried FAILs and surplus ones."""
    from optuna.trial import TrialState

    retried = {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
    return [
        t
        for t in trials
        if not t.user_attrs.get(ATTR_SURPLUS)
        and not (t.state == TrialState.FAIL and t.number in retried)
    ]


@dataclass
class Budget:
    finished: int
    running: int
    waiting: int

    def done(self, n: int) -> bool:
        return self.finished >= n

    def can_start(self, n: int) -> bool:
        return self.waiting > 0 or self.finished + self.running + self.waiting < n


def budget(trials: list) -> Budget:
    from optuna.trial import TrialState

    live = counted(trials)
    return Budget(
        finished=sum(t.state.is_finished() for t in live),
        running=sum(t.state == TrialState.RUNNING for t in live),
        waiting=sum(t.state == TrialState.WAITING for t in live),
    )


# -- one worker ------------------------------------------------------------------------------


class OptunaHooks(TrainerHooks):
    """val_loss at each eval -> the Optuna trial; the pruner's decision -> TrialPruned."""

    def __init__(self, trial, max_steps: int):
        self.trial = trial
        self.max_steps = max_steps

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        import optuna

        value = metrics["val_loss"]
        self.trial.report(value, step)
        if step < self.max_steps and self.trial.should_prune():
            raise optuna.TrialPruned(f"val_loss {value:.4f} behind the other trials at this step")


def worker_tag(trial_number: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{trial_number}"


@dataclass
class Context:
    """What one process needs to run trials of one study."""

    tracker: T.Tracker
    study: Any
    space: Space
    base: RunConfig
    baseline: T.RunInfo
    parent_id: str
    n_trials: int
    progress: Progress
    deadline: float | None = None
    trained: list = field(default_factory=list)

    def objective(self, trial) -> float:
        try:
            return self._objective(trial)
        except Interrupted:
            raise KeyboardInterrupt() from None  # Optuna records FAIL, then we exit 130

    def _objective(self, trial) -> float:
        import optuna

        n = trial.number
        trial.set_user_attr(ATTR_WORKER, worker_tag(n))
        trials = self.study.get_trials(deepcopy=False)
        earlier = [t for t in counted(trials) if t.number < n]
        if len(earlier) >= self.n_trials:
            trial.set_user_attr(ATTR_SURPLUS, True)
            trial.set_user_attr(
                ATTR_REASON, f"surplus: the study already had {self.n_trials} trials"
            )
            return math.nan
        params = {p.name: p.suggest(trial) for p in self.space.params}
        label = f"trial-{n}: {params_label(params)}"
        tags = {
            T.TAG_ROLE: ROLE_TRIAL,
            T.TAG_TRIAL: str(n),
            T.TAG_VALUE: label,
            T.TAG_STUDY: self.study.study_name,
        }
        retry_of = self.study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
        if retry_of is not None:
            tags["sweep.retry_of"] = str(retry_of)
        dup = next(
            (
                t
                for t in trials
                if t.number != n
                and t.state == optuna.trial.TrialState.COMPLETE
                and t.params == params
            ),
            None,
        )
        run_id = self.tracker.create_run(f"trial-{n}", parent_id=self.parent_id, tags=tags)
        trial.set_user_attr(ATTR_RUN, run_id)
        if dup is not None:
            reason = (
                f"same params as trial-{dup.number}: not trained again (its value {dup.value:.4f})"
            )
            trial.set_user_attr(ATTR_DUPLICATE, dup.number)
            self.tracker.set_tags(run_id, {"sweep.duplicate_of": str(dup.number)})
            self.tracker.log_params(run_id, trial_config(self.base, params).to_flat())
            self.tracker.end_run(run_id, "FINISHED", "duplicate", reason)
            self.progress.say(f"trial-{n}: {reason}")
            return float(dup.value)
        try:
            cfg = trial_config(self.base, params)
        except ConfigError as e:
            reason = f"invalid config: {e.message}"
            self.tracker.end_run(run_id, "FAILED", "failed", reason)
            trial.set_user_attr(ATTR_REASON, reason)
            self.progress.say(f"trial-{n}: failed ({reason})")
            return math.nan
        out = train_run(
            self.tracker,
            cfg,
            name=f"trial-{n}",
            parent_id=self.parent_id,
            tags=tags,
            extra_hooks=OptunaHooks(trial, cfg.train.max_steps),
            progress=self.progress,
            stop_exceptions=(optuna.TrialPruned,),
            expect_sha256=self.baseline.params.get("dataset.sha256"),
            run_id=run_id,
        )
        self.trained.append(out)
        if out.state != "complete":
            trial.set_user_attr(ATTR_REASON, out.reason or out.state)
            return math.nan  # Optuna records FAIL; the study goes on
        return float(out.summary["best_val_loss"])

    def on_stale(self, study, frozen) -> None:
        """A trial whose worker died: retry it once, end its MLflow run KILLED."""
        from optuna.storages import RetryFailedTrialCallback

        RetryFailedTrialCallback(max_retry=1)(study, frozen)
        run_id = frozen.user_attrs.get(ATTR_RUN)
        if run_id:
            kill_run(self.tracker, run_id, frozen)

    def reconcile(self) -> None:
        """Fail trials of dead workers (heartbeats, or a dead pid on this host), retry them once,
        and end their MLflow runs KILLED: nothing stays RUNNING after its process is gone."""
        import optuna
        from optuna.trial import TrialState

        storage = self.study._storage
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if has_heartbeat(storage):
                optuna.storages.fail_stale_trials(self.study)
            else:
                self._fail_dead_local()
        by_number = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        children = self.tracker.children(self.parent_id)
        for run in children:
            if run.status != "RUNNING":
                continue
            t = by_number.get(int(run.tags.get(T.TAG_TRIAL, "-1")))
            if t is not None and t.state != TrialState.RUNNING:
                kill_run(self.tracker, run.run_id, t)
        self.tracker.reap_stale(children)

    def _fail_dead_local(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        from .tracking import _alive

        storage = self.study._storage
        host = socket.gethostname()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            w_host, _, rest = str(t.user_attrs.get(ATTR_WORKER, "")).partition(":")
            pid, _, number = rest.partition(":")
            if w_host != host or number != str(t.number) or not pid.isdigit():
                continue
            if int(pid) == os.getpid() or _alive(int(pid)):
                continue
            try:
                # the reason first: a finished trial's attributes can no longer be set
                storage.set_trial_user_attr(
                    t._trial_id, ATTR_REASON, f"worker process {pid} died mid-trial"
                )
                if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:
                continue  # another worker got there first
            self.on_stale(self.study, storage.get_trial(t._trial_id))

    def work(self) -> None:
        """Run trials until the study holds n_trials finished ones (or the timeout)."""
        announced = False
        while True:
            self.reconcile()
            state = budget(self.study.get_trials(deepcopy=False))
            if state.done(self.n_trials):
                return
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.progress.say("timeout reached: stopping this worker")
                return
            if not state.can_start(self.n_trials):
                if not announced:
                    self.progress.say(
                        f"waiting for {state.running} trial(s) running in other workers"
                    )
                    announced = True
                time.sleep(min(2.0, heartbeat_seconds()))
                continue
            announced = False
            timeout = None if self.deadline is None else max(1.0, self.deadline - time.monotonic())
            self.study.optimize(self.objective, n_trials=1, timeout=timeout, gc_after_trial=False)


def kill_run(tracker: T.Tracker, run_id: str, frozen) -> None:
    try:
        run = tracker.get_run(run_id)
    except UserError:
        return
    if run.status == "RUNNING":
        who = frozen.user_attrs.get(ATTR_WORKER, "?").rsplit(":", 1)[0]
        tracker.end_run(
            run_id,
            "KILLED",
            "killed",
            f"worker {who} died mid-trial; Optuna marked trial {frozen.number} FAIL and retries it once",
        )


# -- the study -------------------------------------------------------------------------------


@dataclass
class SearchResult:
    study_name: str
    parent_id: str
    storage: str
    table: pd.DataFrame | None
    best: dict[str, Any] | None  # number, value, params, command
    plots: list[Path]
    notes: list[str]
    counts: dict[str, int]
    closed: bool


def default_study_name(space: Space, baseline_id: str) -> str:
    return f"{Path(space.label).stem}-{baseline_id[:8]}"


def open_study(
    tracker, storage, name: str, sampler, pruner, space: Space, baseline: T.RunInfo, base: RunConfig
):
    """Create the study and its MLflow parent run, or join them. Optuna's unique study name
    decides who creates: only the creator makes the parent run and enqueues the baseline."""
    import optuna

    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="minimize",
            load_if_exists=False,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        return study, join_parent(tracker, study, space, baseline)
    parent_id = tracker.create_run(
        f"search:{name}",
        tags={
            T.TAG_ROLE: ROLE_SEARCH,
            T.TAG_STUDY: name,
            T.TAG_BASELINE: baseline.run_id,
            "sweep.baseline_value": "baseline",
            "sweep.space": space.label,
        },
    )
    tracker.log_params(parent_id, {"space." + p.name: p.describe() for p in space.params})
    study.set_user_attr(ATTR_BASELINE, baseline.run_id)
    study.set_user_attr(ATTR_SPACE, space.fingerprint())
    study.set_user_attr(ATTR_PARENT, parent_id)
    flat = base.to_flat()
    point = {p.name: flat[p.name] for p in space.params}
    study.enqueue_trial(point, user_attrs={"sweep.baseline": True}, skip_if_exists=True)
    if isinstance(sampler, optuna.samplers.GridSampler):
        mark_grid_point(study, sampler, point)
    return study, parent_id


def mark_grid_point(study, sampler, point: dict[str, Any]) -> None:
    """Tell GridSampler which grid point the enqueued baseline trial is, so the grid does not
    train it twice (and its after_trial does not trip over an enqueued trial with no grid id)."""
    from optuna.trial import TrialState

    key = tuple(point[n] for n in sampler._param_names)
    if key not in sampler._all_grids:
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study._storage.set_trial_system_attr(t._trial_id, "search_space", sampler._search_space)
        study._storage.set_trial_system_attr(t._trial_id, "grid_id", sampler._all_grids.index(key))


def join_parent(tracker, study, space: Space, baseline: T.RunInfo, wait_s: float = 60.0) -> str:
    deadline = time.monotonic() + wait_s
    while ATTR_PARENT not in study.user_attrs:
        if time.monotonic() > deadline:
            raise UserError(
                f"study '{study.study_name}' exists but names no MLflow parent run; use another --study"
            )
        time.sleep(0.5)
    attrs = study.user_attrs
    if attrs.get(ATTR_BASELINE) != baseline.run_id:
        raise UserError(
            f"study '{study.study_name}' searches around baseline {attrs.get(ATTR_BASELINE)}, not {baseline.run_id}; "
            f"pass --baseline {attrs.get(ATTR_BASELINE)} or another --study"
        )
    if attrs.get(ATTR_SPACE) != space.fingerprint():
        raise UserError(
            f"study '{study.study_name}' was started with another space ({attrs.get(ATTR_SPACE)}); "
            "use the same --space or another --study"
        )
    parent_id = attrs[ATTR_PARENT]
    run = tracker.get_run(parent_id)
    if run.status != "RUNNING":
        tracker.reopen(parent_id)
    return parent_id


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a spawned worker process needs (picklable)."""

    tracking_uri: str
    experiment: str
    study: str
    storage: str | None
    space: str
    sampler: str
    pruner: str
    n_trials: int
    deadline_s: float | None
    seed: int | None
    baseline_id: str
    index: int
    threads: int


def _worker_main(spec: WorkerSpec) -> None:
    """Entry point of a local worker process (multiprocessing, spawn)."""
    import torch

    torch.set_num_threads(spec.threads)
    progress = Progress(live=False)
    tracker = T.Tracker(spec.tracking_uri, spec.experiment, create=False)
    ctx = prepare(
        tracker,
        space=spec.space,
        sampler=spec.sampler,
        pruner=spec.pruner,
        study_name=spec.study,
        storage_url=spec.storage,
        seed=spec.seed,
        n_trials=spec.n_trials,
        baseline_id=spec.baseline_id,
        progress=progress,
    )
    if spec.deadline_s is not None:
        ctx.deadline = time.monotonic() + spec.deadline_s
    ctx.work()


def prepare(
    tracker: T.Tracker,
    *,
    space: str | Space = "default",
    sampler: str | Any = "tpe",
    pruner: str | Any = "hyperband",
    study_name: str | None = None,
    storage_url: str | None = None,
    seed: int | None = None,
    n_trials: int = 20,
    baseline_id: str | None = None,
    progress: Progress | None = None,
) -> Context:
    """Validate everything, open the storage and the study (creating it and its parent run if new)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    progress = progress or Progress(live=False)
    if n_trials < 1:
        raise UserError(f"--trials must be at least 1 (got {n_trials})")
    if isinstance(sampler, str) and sampler not in SAMPLERS:
        raise UserError(f"unknown sampler '{sampler}'; choose one of: {', '.join(SAMPLERS)}")
    if isinstance(pruner, str) and pruner not in PRUNERS:
        raise UserError(f"unknown pruner '{pruner}'; choose one of: {', '.join(PRUNERS)}")
    space_obj = space if isinstance(space, Space) else load_space(space)
    baseline = tracker.find_baseline(baseline_id)
    base = baseline_config(baseline)
    space_obj = anchored(space_obj, base)
    check_choices(space_obj, base)
    sampler_obj = (
        make_sampler(sampler, space_obj, seed, n_trials) if isinstance(sampler, str) else sampler
    )
    pruner_obj = make_pruner(pruner, base) if isinstance(pruner, str) else pruner
    name = study_name or default_study_name(space_obj, baseline.run_id)
    holder: dict[str, Context] = {}
    storage = open_storage(storage_url, tracker, on_stale=lambda s, t: holder["ctx"].on_stale(s, t))
    study, parent_id = open_study(
        tracker, storage, name, sampler_obj, pruner_obj, space_obj, baseline, base
    )
    ctx = Context(tracker, study, space_obj, base, baseline, parent_id, n_trials, progress)
    holder["ctx"] = ctx
    return ctx


def check_choices(space: Space, base: RunConfig) -> None:
    """Each listed value must make a valid config on its own, before anything trains."""
    for p in space.params:
        values = p.choices if p.kind == "categorical" else (p.low, p.high)
        for v in values:
            try:
                trial_config(base, {p.name: v})
            except ConfigError as e:
                raise UserError(f"space {space.label}: {p.name}={v}: {e.message}") from None


def run_search(
    tracker: T.Tracker,
    *,
    trials: int = 20,
    space: str | Space = "default",
    sampler: str | Any = "tpe",
    pruner: str | Any = "hyperband",
    study_name: str | None = None,
    storage: str | None = None,
    workers: int = 1,
    seed: int | None = None,
    timeout: float | None = None,
    baseline_id: str | None = None,
    progress: Progress | None = None,
    plots: bool = True,
) -> SearchResult:
    """Run (or join, or resume) a study until it holds `trials` finished trials."""
    progress = progress or Progress(live=False)
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if timeout is not None and timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds (got {timeout})")
    if workers > 1 and not (
        isinstance(sampler, str) and isinstance(pruner, str) and isinstance(space, str)
    ):
        raise UserError("--workers > 1 takes sampler, pruner and space by name")
    ctx = prepare(
        tracker,
        space=space,
        sampler=sampler,
        pruner=pruner,
        study_name=study_name,
        storage_url=storage,
        seed=seed,
        n_trials=trials,
        baseline_id=baseline_id,
        progress=progress,
    )
    tracker.set_tags(ctx.parent_id, {"sweep.storage": storage_tag(storage, tracker)})
    notes: list[str] = []
    if sampler == "grid":
        size = math.prod(len(v) for v in ctx.space.grid().values())
        if trials > size:
            notes.append(f"the grid has {size} points: the study stops at {size} trials")
            ctx.n_trials = size
    before = budget(ctx.study.get_trials(deepcopy=False))
    progress.say(
        f"study '{ctx.study.study_name}' ({storage_label(storage, tracker)}): {before.finished} of "
        f"{ctx.n_trials} trials finished; MLflow parent run {ctx.parent_id}"
    )
    if timeout is not None:
        ctx.deadline = time.monotonic() + timeout
    try:
        if workers == 1:
            ctx.work()
        else:
            run_workers(
                ctx, tracker, workers, storage, space, sampler, pruner, seed, timeout, progress
            )
        ctx.reconcile()
    except (KeyboardInterrupt, Interrupted):
        close_parent_if_idle(ctx, "KILLED", "killed", "interrupted")
        raise
    except BaseException as e:
        close_parent_if_idle(ctx, "FAILED", "failed", f"{type(e).__name__}: {e}")
        raise
    return finish(ctx, storage, notes, plots)


def storage_label(url: str | None, tracker: T.Tracker) -> str:
    return f"journal {journal_path(tracker)}" if url is None else redact(url)


def storage_tag(url: str | None, tracker: T.Tracker) -> str:
    """Where the study lives, for `sweep plot`: the journal's path, or the URL without its password."""
    if url is None:
        return str(journal_path(tracker))
    if url.endswith(".log") or url.startswith("journal:"):
        return str(Path(url.removeprefix("journal:")).expanduser().resolve())
    return redact(url)


def run_workers(
    ctx, tracker, workers, storage, space, sampler, pruner, seed, timeout, progress
) -> None:
    import multiprocessing as mp

    cores = os.cpu_count() or 1
    threads = max(1, cores // workers)
    mp_ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        spec = WorkerSpec(
            tracking_uri=tracker.uri,
            experiment=tracker.experiment_name,
            study=ctx.study.study_name,
            storage=storage,
            space=space,
            sampler=sampler,
            pruner=pruner,
            n_trials=ctx.n_trials,
            deadline_s=timeout,
            seed=None if seed is None else seed + i,
            baseline_id=ctx.baseline.run_id,
            index=i,
            threads=threads,
        )
        p = mp_ctx.Process(target=_worker_main, args=(spec,), name=f"sweep-worker-{i}")
        p.start()
        procs.append(p)
    progress.say(
        f"{workers} workers started ({threads} torch thread(s) each): pids {', '.join(str(p.pid) for p in procs)}"
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
    bad = [p for p in procs if p.exitcode != 0]
    for p in bad:
        progress.warn(f"{p.name} (pid {p.pid}) exited with code {p.exitcode}")


def close_parent_if_idle(ctx: Context, status: str, state: str, reason: str | None = None) -> bool:
    """End the parent run unless other workers still run trials (the last one closes it)."""
    from optuna.trial import TrialState

    try:
        running = ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except Exception:
        running = []
    if running:
        return False
    ctx.tracker.end_run(ctx.parent_id, status, state, reason)
    return True


def finish(ctx: Context, storage: str | None, notes: list[str], plots: bool) -> SearchResult:
    from optuna.trial import TrialState

    from .compare import attach_table, sweep_table

    tracker = ctx.tracker
    trials = ctx.study.get_trials(deepcopy=False)
    live = counted(trials)
    counts = {s.name.lower(): sum(t.state == s for t in live) for s in TrialState}
    counts["retried"] = (
        len(trials) - len(live) - sum(bool(t.user_attrs.get(ATTR_SURPLUS)) for t in trials)
    )
    df = sweep_table(tracker, tracker.get_run(ctx.parent_id))
    attach_table(tracker, ctx.parent_id, df)
    best = best_trial(ctx)
    if best is not None:
        tracker.set_tags(
            ctx.parent_id,
            {"sweep.best_trial": str(best["number"]), "sweep.best_command": best["command"]},
        )
        tracker.log_text(ctx.parent_id, best["command"] + "\n", "best_command.txt")
    written: list[Path] = []
    if plots:
        written, plot_notes = write_plots(ctx)
        notes.extend(plot_notes)
    closed = close_parent_if_idle(ctx, "FINISHED", "complete")
    if not closed:
        notes.append("other workers still run trials: the last one to finish closes the parent run")
    return SearchResult(
        study_name=ctx.study.study_name,
        parent_id=ctx.parent_id,
        storage=storage_label(storage, tracker),
        table=df,
        best=best,
        plots=written,
        notes=notes,
        counts=counts,
        closed=closed,
    )


def best_trial(ctx: Context) -> dict[str, Any] | None:
    try:
        t = ctx.study.best_trial
    except ValueError:
        return None
    cfg = trial_config(ctx.base, t.params)
    return {
        "number": t.number,
        "value": t.value,
        "params": dict(t.params),
        "command": baseline_command(cfg),
    }


def write_plots(ctx: Context) -> tuple[list[Path], list[str]]:
    """Optuna's figures (plots.figures_optuna): PNGs next to the store (sweep-plots/<study>/)
    and on the parent run (plots/)."""
    from .plots import ARTIFACT_DIR, figures_optuna, save_png

    out_dir = ctx.tracker.store_dir / "sweep-plots" / ctx.study.study_name
    figs, notes = figures_optuna(ctx.study)
    written: list[Path] = []
    for name, fig in figs:
        path = save_png(fig, out_dir / f"{name}.png")
        ctx.tracker.log_artifact(ctx.parent_id, path, ARTIFACT_DIR)
        written.append(path)
    return written, notes


def report_lines(result: SearchResult) -> list[str]:
    c = result.counts
    lines = [
        f"study '{result.study_name}' ({result.storage}): {c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, "
        f"{c.get('fail', 0)} failed"
        + (f", {c['retried']} retried after a lost worker" if c.get("retried") else ""),
    ]
    if result.best is not None:
        b = result.best
        lines.append(
            f"best: trial-{b['number']} best_val_loss {b['value']:.4f} ({params_label(b['params'])})"
        )
        lines.append(f"train it as a baseline: {b['command']}")
    for p in result.plots:
        lines.append(f"plot: {p}")
    lines.extend(f"note: {n}" for n in result.notes)
    lines.append(
        f"sweep run {result.parent_id}; `sweep table --sweep {result.parent_id}` prints this table again"
    )
    return lines
