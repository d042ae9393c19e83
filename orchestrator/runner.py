"""Train one configuration as one MLflow run: params, dataset, metrics, samples, checkpoint.

`Runner` is shared by baseline, ablate, search and confirm so every run logs exactly the
same things. It builds the `Trainer` first (the trainer validates device, AMP and block
size), runs it with a list of hooks (the MLflow logger first, then the caller's, e.g. the
Optuna pruner's), and ends the run in a `RunState`: never left RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.data import CorpusError, Dataset, resolve_corpus
from model.errors import ConfigError
from model.train import DivergenceError, Trainer, TrainerHooks

from . import provenance
from . import tracking as T
from .config import RunConfig, notes
from .errors import Interrupted, StoreError, UserError
from .progress import Progress
from .tracking import RunState


@contextmanager
def parent_run(tracker: T.Tracker, run_id: str) -> Iterator[str]:
    """A sweep's parent run is never left RUNNING: an interrupt ends it KILLED, an error FAILED."""
    try:
        yield run_id
    except (KeyboardInterrupt, Interrupted):
        tracker.end_run(run_id, RunState.KILLED, "interrupted")
        raise
    except BaseException as e:
        tracker.end_run(run_id, RunState.FAILED, f"{type(e).__name__}: {e}")
        raise


@dataclass
class Outcome:
    run_id: str
    name: str
    state: RunState
    summary: dict[str, float] = field(default_factory=dict)
    reason: str | None = None


class HookList(TrainerHooks):
    """Fans the trainer's events out to several hooks, in order."""

    def __init__(self, hooks: Sequence[TrainerHooks]):
        self.hooks = list(hooks)

    def on_step(self, step: int, loss: float, tokens_per_s: float) -> None:
        for h in self.hooks:
            h.on_step(step, loss, tokens_per_s)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        for h in self.hooks:
            h.on_eval(step, metrics)

    def on_checkpoint(self, path: Path, metrics: dict[str, float]) -> None:
        for h in self.hooks:
            h.on_checkpoint(path, metrics)

    def on_sample(self, step: int, text: str) -> None:
        for h in self.hooks:
            h.on_sample(step, text)


class RunLogger(TrainerHooks):
    """Trainer events -> MLflow (metrics live, samples and checkpoint at the end) and progress."""

    def __init__(
        self,
        tracker: T.Tracker,
        run_id: str,
        staging: Path,
        progress: Progress,
        max_steps: int = 0,
    ):
        self.tracker = tracker
        self.run_id = run_id
        self.staging = staging  # mirrors the run's artifact tree; uploaded in one call
        self.samples = staging / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        # samples/step-0020.txt ... step-1000.txt: zero-padded to the run's last step, so the
        # MLflow UI and list_artifacts (which sort by name) list them in step order
        self.step_width = len(str(max(max_steps, 1)))
        self.best: Path | None = None
        self.last_step: int | None = None

    def on_step(self, step: int, loss: float, tokens_per_s: float) -> None:
        self.progress.step(step, loss, tokens_per_s)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.last_step = step
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        self.tracker.log_metrics(self.run_id, finite, step, synchronous=False)
        self.progress.eval(step, metrics)

    def on_checkpoint(self, path: Path, metrics: dict[str, float]) -> None:
        self.best = Path(path)

    def on_sample(self, step: int, text: str) -> None:
        (self.samples / f"step-{step:0{self.step_width}d}.txt").write_text(text, encoding="utf-8")

    def upload(self) -> None:
        """config.json, samples and the best checkpoint in one upload at the end (also after
        a failure or an interrupt, so what was learned is kept), then checked: every file is
        in the store with its size, or this raises (a full disk, a path too long)."""
        self.tracker.flush(self.run_id)
        if self.best is not None and self.best.exists():
            staged = self.staging / "checkpoints" / "best.pt"
            staged.parent.mkdir(exist_ok=True)
            try:
                os.link(self.best, staged)
            except OSError:
                shutil.copyfile(self.best, staged)
        self.tracker.log_artifacts(self.run_id, self.staging)
        want = {
            p.relative_to(self.staging).as_posix(): p.stat().st_size
            for p in self.staging.rglob("*")
            if p.is_file()
        }
        stored = self.tracker.artifact_sizes(self.run_id)
        bad = sorted(k for k, size in want.items() if stored.get(k) != size)
        if bad:
            got = ", ".join(f"{k} ({stored.get(k, 'missing')} of {want[k]} bytes)" for k in bad[:3])
            raise ArtifactError(f"artifacts not stored whole: {got}")


class ArtifactError(RuntimeError):
    """The store did not keep a run's artifacts whole: the run cannot end FINISHED."""


SUMMARY_KEYS = (
    "best_val_loss",
    "best_val_ppl",
    "final_train_loss",
    "final_val_loss",
    "best_step",
    "wall_s",
    "params",
    "peak_mem_mb",
)


def run_params(cfg: RunConfig, identity: dict[str, Any]) -> dict[str, Any]:
    params = dict(cfg.to_flat())
    params.update({f"dataset.{k}": v for k, v in identity.items()})
    return params


def pin_corpus(cfg: RunConfig, dataset: Dataset) -> RunConfig:
    """Record the corpus actually used, so later sweeps read the same one (no fallback)."""
    name = dataset.corpus.name
    return cfg if cfg.data == name else cfg.replace(data=name)


WORKDIR_PREFIX = "sweep-run-"  # + pid + "-": a killed run's folder is found and removed later


def remove_dead_workdirs(root: Path | None = None) -> list[Path]:
    """Remove the work folders (checkpoints, staged artifacts) of runs whose process is gone:
    a SIGKILL leaves them behind, and each can hold a checkpoint of tens of MB."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name[len(WORKDIR_PREFIX) :].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not T.alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Runner:
    """Trains the configurations of one command as MLflow runs.

    Holds what those runs share: the tracker, the progress display, the corpus (loaded and
    encoded once per Runner, not per process) and the baseline's corpus checksum.
    """

    def __init__(
        self,
        tracker: T.Tracker,
        progress: Progress | None = None,
        *,
        expect_sha256: str | None = None,
    ):
        self.tracker = tracker
        self.progress = progress or Progress(live=False)
        self.expect_sha256 = expect_sha256
        self._datasets: dict[str | None, Dataset] = {}
        remove_dead_workdirs()

    def dataset(self, spec: str | None) -> Dataset:
        """Resolve and encode a corpus once; a corpus error is one line for the user."""
        if spec not in self._datasets:
            try:
                corpus = resolve_corpus(spec)
            except CorpusError as e:
                raise UserError(str(e)) from None
            if corpus.notice:
                self.progress.warn(corpus.notice)
            self._datasets[spec] = Dataset(corpus)
        return self._datasets[spec]

    def prepare(self, cfg: RunConfig) -> tuple[RunConfig, Dataset]:
        """The config pinned to its corpus, checked against the baseline's checksum."""
        dataset = self.dataset(cfg.data)
        sha = dataset.identity()["sha256"]
        if self.expect_sha256 and sha != self.expect_sha256:
            raise UserError(
                f"the corpus '{cfg.data}' has sha256 {sha[:12]}..., but the baseline was "
                f"trained on {self.expect_sha256[:12]}...; record a new baseline"
            )
        return pin_corpus(cfg, dataset), dataset

    def _claimed_elsewhere(self, run_id: str, parent_id: str, config_hash: str) -> T.RunInfo | None:
        """Another run of the same config and seed in this sweep that finished, or that a live
        process started before this one: two `sweep ablate` at once train each (config, seed)
        once. Every process creates its run first and then looks, so of two racing processes
        at least the later one sees the earlier one's run (MLflow's store orders them)."""
        mine = self.tracker.get_run(run_id)
        for run in self.tracker.children(parent_id):
            if run.run_id == run_id or run.tags.get(T.TAG_CONFIG_HASH) != config_hash:
                continue
            if run.state is RunState.COMPLETE:
                return run
            earlier = (run.start_time, run.run_id) < (mine.start_time, mine.run_id)
            if run.state is RunState.RUNNING and earlier and not T.orphaned(run):
                return run
        return None

    def check(self, cfg: RunConfig) -> RunConfig:
        """Everything the trainer would refuse, refused before any run is recorded."""
        cfg, dataset = self.prepare(cfg)
        self._trainer(cfg, dataset, Path(tempfile.gettempdir()))
        for note in notes(cfg):
            self.progress.warn(note)
        return cfg

    @staticmethod
    def _trainer(cfg: RunConfig, dataset: Dataset, out_dir: Path) -> Trainer:
        try:
            return Trainer(cfg.gpt, cfg.train, dataset, out_dir=out_dir, sample_config=cfg.sample)
        except ConfigError as e:
            raise UserError(f"{e.key}: {e.message}") from None

    def train(
        self,
        cfg: RunConfig,
        name: str,
        *,
        parent_id: str | None = None,
        tags: dict[str, str] | None = None,
        hooks: Sequence[TrainerHooks] = (),
        stop_on: tuple[type[BaseException], ...] = (),
        run_id: str | None = None,
    ) -> Outcome:
        """Train `cfg` in a new MLflow run (or `run_id`, already created) and end it.

        A diverging or crashing run ends FAILED with its reason and returns; Ctrl-C / SIGTERM
        end it KILLED and propagate; `stop_on` exceptions (a pruner's) end it PRUNED and
        propagate.
        """
        cfg, dataset = self.prepare(cfg)
        identity = dataset.identity()
        with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
            workdir = Path(tmp)
            staging = workdir / "artifacts"
            staging.mkdir()
            trainer = self._trainer(cfg, dataset, workdir / "ckpt")
            amp = str(trainer.dtype).replace("torch.", "") if trainer.dtype else "fp32"
            all_tags = {
                T.TAG_CONFIG_HASH: cfg.config_hash(),
                T.TAG_SEED: str(cfg.train.seed),
                T.TAG_DEVICE: trainer.device,
                T.TAG_AMP: amp,
                "sweep.threads": str(trainer.threads),
                **provenance.tags(),
                **(tags or {}),
            }
            tracker = self.tracker
            if run_id is None:
                run_id = tracker.create_run(name, parent_id=parent_id, tags=all_tags)
                if parent_id is not None:
                    other = self._claimed_elsewhere(run_id, parent_id, cfg.config_hash())
                    if other is not None:
                        tracker.delete_run(run_id)
                        reason = (
                            f"trained by another process (run {other.run_id}); not trained twice"
                        )
                        self.progress.say(f"{name}: {reason}")
                        return Outcome(other.run_id, name, RunState.DUPLICATE, {}, reason)
            else:
                tracker.set_tags(run_id, all_tags)
            tracker.log_params(run_id, run_params(cfg, identity))
            tracker.log_dataset(run_id, {**identity, "source": dataset.corpus.source})
            (staging / "config.json").write_text(
                json.dumps(
                    {
                        "config": cfg.to_flat(),
                        "dataset": identity,
                        "device": trainer.device,
                        "amp": amp,
                        "threads": trainer.threads,
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
            logger = RunLogger(tracker, run_id, staging, self.progress, cfg.train.max_steps)
            trainer.hooks = HookList([logger, *hooks])
            self.progress.run_start(name, cfg.train.max_steps)
            outcome = self._run(trainer, logger, run_id, name, stop_on)
        self.progress.run_end(name, outcome.state, outcome.summary, outcome.reason)
        return outcome

    def _run(
        self,
        trainer: Trainer,
        logger: RunLogger,
        run_id: str,
        name: str,
        stop_on: tuple[type[BaseException], ...],
    ) -> Outcome:
        tracker = self.tracker
        state, reason, summary = RunState.COMPLETE, None, {}
        try:
            summary = trainer.run()
        except DivergenceError as e:
            state, reason = RunState.FAILED, str(e)
            tracker.set_tags(run_id, {T.TAG_FAILED_STEP: str(e.step)})
        except (KeyboardInterrupt, Interrupted) as e:
            reason = (
                "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else f"terminated ({e})"
            )
            self._finish(logger, run_id, RunState.KILLED, reason)
            self.progress.run_end(name, RunState.KILLED, {}, reason)
            raise
        except stop_on as e:
            reason = f"pruned at step {logger.last_step}" + (f": {e}" if str(e) else "")
            tracker.set_tags(run_id, {T.TAG_PRUNED_STEP: str(logger.last_step)})
            self._finish(logger, run_id, RunState.PRUNED, reason)
            self.progress.run_end(name, RunState.PRUNED, {}, reason)
            raise
        except RuntimeError as e:  # e.g. out of memory: this run fails alone
            first = str(e).splitlines()[0] if str(e) else ""
            state, reason = RunState.FAILED, f"{type(e).__name__}: {first}"
        except BaseException as e:
            self._finish(logger, run_id, RunState.FAILED, f"{type(e).__name__}: {e}")
            raise
        if summary:
            metrics = {k: float(summary[k]) for k in SUMMARY_KEYS if k in summary}
            metrics["train_tokens_per_s"] = float(summary.get("tokens_per_s", 0.0))
            step = int(summary.get("steps", trainer.cfg.max_steps))
            finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
            tracker.log_metrics(run_id, finite, step)
        self._finish(logger, run_id, state, reason)
        return Outcome(run_id=run_id, name=name, state=state, summary=summary, reason=reason)

    def _finish(self, logger: RunLogger, run_id: str, state: RunState, reason: str | None) -> None:
        """Upload and verify the artifacts, then end the run. A run is FINISHED only with its
        artifacts stored whole; else it ends FAILED with the reason (and resume retrains it)."""
        try:
            logger.upload()
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            why = f"could not store the run's artifacts: {type(e).__name__}: {first}"
            ending = state if state in (RunState.KILLED, RunState.FAILED) else RunState.FAILED
            # if the store refuses this write too, the next command that writes ends the run
            with contextlib.suppress(Exception):
                self.tracker.end_run(run_id, ending, f"{reason}; {why}" if reason else why)
            if ending is state:
                return  # killed or failed anyway: that is what propagates
            raise StoreError(f"{self.tracker.uri}: {why}") from None
        self.tracker.end_run(run_id, state, reason)
