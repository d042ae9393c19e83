"""Train one configuration as one MLflow run: params, dataset, metrics, samples, checkpoint.

`Runner` is shared by baseline, ablate, search and confirm so every run logs exactly the
same things. It builds the `Trainer` first (the trainer validates device, AMP and block
size), runs it with a list of hooks (the MLflow logger first, then the caller's, e.g. the
Optuna pruner's), and ends the run in a `RunState`: never left RUNNING.
"""

from __future__ import annotations

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

from . import tracking as T
from .config import RunConfig
from .errors import Interrupted, UserError
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

    def __init__(self, tracker: T.Tracker, run_id: str, staging: Path, progress: Progress):
        self.tracker = tracker
        self.run_id = run_id
        self.staging = staging  # mirrors the run's artifact tree; uploaded in one call
        self.samples = staging / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.progress = progress
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
        (self.samples / f"step-{step}.txt").write_text(text, encoding="utf-8")

    def upload(self) -> None:
        """config.json, samples and the best checkpoint in one upload at the end (also after
        a failure or an interrupt, so what was learned is kept)."""
        self.tracker.flush(self.run_id)
        if self.best is not None and self.best.exists():
            staged = self.staging / "checkpoints" / "best.pt"
            staged.parent.mkdir(exist_ok=True)
            try:
                os.link(self.best, staged)
            except OSError:
                shutil.copyfile(self.best, staged)
        self.tracker.log_artifacts(self.run_id, self.staging)


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

    def check(self, cfg: RunConfig) -> RunConfig:
        """Everything the trainer would refuse, refused before any run is recorded."""
        cfg, dataset = self.prepare(cfg)
        self._trainer(cfg, dataset, Path(tempfile.gettempdir()))
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
        with tempfile.TemporaryDirectory(prefix="sweep-run-") as tmp:
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
                **(tags or {}),
            }
            tracker = self.tracker
            if run_id is None:
                run_id = tracker.create_run(name, parent_id=parent_id, tags=all_tags)
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
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
            logger = RunLogger(tracker, run_id, staging, self.progress)
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
        try:
            logger.upload()
        finally:
            self.tracker.end_run(run_id, state, reason)
