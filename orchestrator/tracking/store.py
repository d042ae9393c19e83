"""The MLflow adapter: a store and one experiment in it (runs, params, metrics, artifacts).

Layout contract (DESIGN.md): one experiment per study; baseline runs tagged
`sweep.role=baseline`; sweep parents tagged with their role; children nested through
`mlflow.parentRunId`; a run never stays RUNNING after its process ends (`end_run` takes a
`RunState`, which knows its MLflow status).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..credentials import export_tracking_credentials, redact, scrub
from ..errors import StoreError, UserError, first_line
from ..paths import slug
from .reach import check_reachable, sqlite_path
from .schema import (
    DEFAULT_EXPERIMENT,
    PARENT_TAG,
    TAG_HOST,
    TAG_PID,
    TAG_REASON,
    TAG_SLURM_JOB,
    TAG_STATE,
    RunState,
)
from .writer import MetricWriter

MAX_EXPERIMENT_NAME = 200  # it becomes a folder name under mlruns/ (file names stop at 255 bytes)


def resolve_uri(uri: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else MLflow's default in the current directory."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


@dataclass
class RunInfo:
    """What the rest of the orchestrator needs from an MLflow run, without mlflow types."""

    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int
    artifact_uri: str
    deleted: bool = False  # in MLflow's trash (`mlflow runs delete`, the UI's Delete)

    @property
    def state(self) -> RunState:
        return RunState.from_run(self.status, self.tags.get(TAG_STATE))

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(PARENT_TAG)


def where() -> dict[str, str]:
    """The tags that say which process holds a run: its pid, host and, inside a Slurm job,
    the job (`<array>_<task>` for an array task: the log to read, the task to scancel)."""
    tags = {TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()}
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    if job:
        tags[TAG_SLURM_JOB] = job
    return tags


def _info(run: Any) -> RunInfo:
    return RunInfo(
        run_id=run.info.run_id,
        name=run.info.run_name or run.data.tags.get("mlflow.runName", ""),
        status=run.info.status,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        start_time=run.info.start_time or 0,
        artifact_uri=run.info.artifact_uri,
        deleted=run.info.lifecycle_stage == "deleted",
    )


def _writes(method):
    """A write the store refuses (full disk, read-only, locked, a name too long) becomes one
    StoreError naming the store and the cause, instead of MLflow's traceback."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (UserError, StoreError):
            raise
        except Exception as e:
            cause = scrub(_cause(e), self.connect_uri)
            raise StoreError(f"cannot write to the MLflow store {self.uri}: {cause}") from None

    return wrapper


def _cause(e: BaseException) -> str:
    """The line of an MLflow/SQLAlchemy error that says what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    line = next((ln for ln in lines if "Error" in ln or "error" in ln), lines[0] if lines else "")
    return f"{type(e).__name__}: {line[:300]}"


class Tracker:
    """An MLflow store and one experiment in it."""

    def __init__(
        self, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, create: bool = True
    ):
        import logging

        import mlflow  # noqa: F401  (imported here: heavy)
        from mlflow import MlflowClient

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # no "🏃 View run ... at: URL" lines on stdout amid the progress (a tracking server)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # Failures reach the user as one line (StoreError), not as logged tracebacks.
        for name in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if not experiment or len(experiment) > MAX_EXPERIMENT_NAME:
            raise UserError(
                f"--experiment must be 1 to {MAX_EXPERIMENT_NAME} characters (got {len(experiment)}): "
                "it names a folder of the store"
            )
        uri = resolve_uri(uri)
        check_reachable(uri)
        # `connect_uri`: what MLflow connects with (an http URI's user-info moved to MLflow's
        # variables, which worker processes inherit; a database URL keeps its password);
        # `uri`: what people see and runs record, never with a password in it.
        self.connect_uri = export_tracking_credentials(uri)
        self.uri = redact(self.connect_uri)
        db = sqlite_path(self.uri)
        if not create and db is not None and not db.exists():
            raise UserError(
                f"no MLflow store at {db}: record a baseline first (`sweep baseline`), or pass --tracking-uri"
            )
        self.client = MlflowClient(tracking_uri=self.connect_uri)
        self._metrics = MetricWriter(self.client.log_batch)
        self.experiment_name = experiment
        exp = self._first_contact(experiment)
        if exp is None:
            if not create:
                raise UserError(f"no experiment named '{experiment}' in {self.uri}")
            self.experiment_id = self.client.create_experiment(
                experiment,
                artifact_location=self._artifact_location(experiment),
                # Training runs, not GenAI traces: the UI opens on the runs table.
                tags={
                    "mlflow.experimentKind": "custom_model_development",
                    "mlflow.note.content": "Recorded by `sweep`: a baseline, one-knob ablations "
                    "(ablate:<knob>) and Optuna searches (search:<study>); nested runs hold each value.",
                },
            )
        else:
            if exp.lifecycle_stage == "deleted":
                raise UserError(
                    f"experiment '{experiment}' is deleted in {self.uri}; restore it or pick another name"
                )
            self.experiment_id = exp.experiment_id

    def _first_contact(self, experiment: str):
        """Look the experiment up; the first call creates a new SQLite store's tables. Two
        processes starting on one fresh store race to create them: the loser sees "table
        ... already exists" and finds them there on the next try."""
        for attempt in range(5):
            try:
                return self.client.get_experiment_by_name(experiment)
            except Exception as e:
                if "already exists" in str(e) and attempt < 4:
                    time.sleep(0.5 + attempt)
                    continue
                cause = scrub(_cause(e), self.connect_uri)
                raise StoreError(f"cannot open the MLflow store {self.uri}: {cause}") from None
        return None

    def _artifact_location(self, experiment: str) -> str | None:
        db = sqlite_path(self.uri)
        if db is None:
            return None  # a tracking server decides
        return (db.parent / "mlruns" / slug(experiment)).as_uri()

    @property
    def store_dir(self) -> Path:
        """Where tables and figures are written next to the store (cwd for a remote server)."""
        db = sqlite_path(self.uri)
        return db.parent if db is not None else Path.cwd()

    # -- runs ---------------------------------------------------------------------------
    @_writes
    def create_run(
        self, name: str, *, parent_id: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        all_tags = {**where(), **(tags or {})}
        if parent_id:
            all_tags[PARENT_TAG] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id

    @_writes
    def end_run(self, run_id: str, state: RunState, reason: str | None = None) -> None:
        tags = {TAG_STATE: str(state)}
        if reason:
            tags[TAG_REASON] = reason[:4000]
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, status=state.status)

    @_writes
    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status=RunState.RUNNING.status)
        self.set_tags(run_id, where())

    @_writes
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    @_writes
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, "None" if v is None else str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    @_writes
    def log_metrics(
        self, run_id: str, metrics: dict[str, float], step: int, synchronous: bool = True
    ) -> None:
        """One batch write; with synchronous=False gathered and written on a writer thread
        (tracking/writer.py; `flush` waits for it), so training does not wait on the store."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if synchronous:
            self.client.log_batch(run_id, metrics=batch)
        else:
            self._metrics.add(run_id, batch)

    @_writes
    def log_history(self, run_id: str, key: str, points: list[tuple[int, int, float]]) -> None:
        """Values of one metric as (step, timestamp, value), as `metric_history` reads them."""
        from mlflow.entities import Metric

        batch = [Metric(key, float(v), int(ts), int(step)) for step, ts, v in points]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(run_id, metrics=batch[i : i + 1000])

    @_writes
    def flush(self, run_id: str) -> None:
        """Write the run's gathered metrics and wait for them; a write that failed raises."""
        self._metrics.flush(run_id)

    @_writes
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    @_writes
    def delete_run(self, run_id: str) -> None:
        """Hide a run that never trained (it lost a race to another process)."""
        self.client.set_terminated(run_id, status=RunState.KILLED.status)
        self.client.delete_run(run_id)

    def artifact_sizes(self, run_id: str, path: str | None = None) -> dict[str, int]:
        """Every stored artifact file of a run (recursively) with its size in bytes."""
        out: dict[str, int] = {}
        for f in self.client.list_artifacts(run_id, path):
            if f.is_dir:
                out.update(self.artifact_sizes(run_id, f.path))
            else:
                out[f.path] = int(f.file_size or 0)
        return out

    @_writes
    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(directory), artifact_path)

    @_writes
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    @_writes
    def log_dataset(self, run_id: str, identity: dict[str, Any]) -> None:
        """The corpus as an MLflow dataset input (shown in the UI) and as params."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        ds = Dataset(
            name=str(identity["name"]),
            digest=str(identity["sha256"])[:36],
            source_type="local",
            source=str(identity.get("source", identity["name"])),
            profile=f'{{"characters": {identity["characters"]}, "vocab_size": {identity["vocab_size"]}}}',
        )
        self.client.log_inputs(
            run_id, [DatasetInput(ds, tags=[InputTag("mlflow.data.context", "training")])]
        )

    def download(self, run_id: str, artifact_path: str, dst: Path) -> Path:
        from mlflow.exceptions import MlflowException

        dst.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.client.download_artifacts(run_id, artifact_path, str(dst)))
        except (MlflowException, OSError) as e:
            raise UserError(
                f"run {run_id} has no artifact '{artifact_path}': {first_line(e) or type(e).__name__}"
            ) from None

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        """(step, timestamp, value) of every logged value of one metric."""
        return [
            (int(m.step), int(m.timestamp), float(m.value))
            for m in self.client.get_metric_history(run_id, key)
        ]

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [f.path for f in self.client.list_artifacts(run_id, path)]

    # -- lookups ------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunInfo:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as e:
            if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise UserError(f"no run with id '{run_id}' in {self.uri}") from None
            # a locked or unreadable store is not a missing run
            cause = scrub(_cause(e), self.connect_uri)
            raise StoreError(f"cannot read the MLflow store {self.uri}: {cause}") from None
        return _info(run)

    def search(
        self, filter_string: str = "", order_by: list[str] | None = None, max_results: int = 5000
    ) -> list[RunInfo]:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=filter_string,
            max_results=max_results,
            order_by=order_by or ["attributes.start_time DESC"],
        )
        return [_info(r) for r in runs]

    def children(self, parent_id: str) -> list[RunInfo]:
        runs = self.search(f"tags.`{PARENT_TAG}` = '{parent_id}'", ["attributes.start_time ASC"])
        return runs
