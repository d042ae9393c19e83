"""Train one configuration as one MLflow run: params, dataset, metrics, samples, checkpoint.

Shared by baseline, ablate and search so every run logs exactly the same things.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.data import CorpusError, Dataset, resolve_corpus
from model.errors import ConfigError
from model.train import DivergenceError, Trainer, TrainerHooks, resolve_amp, resolve_device

from . import tracking as T
from .config import RunConfig
from .errors import UserError
from .progress import Progress


class Interrupted(BaseException):
    """Raised by the SIGTERM handler: the run ends KILLED, like Ctrl-C."""


@contextmanager
def parent_run(tracker: T.Tracker, run_id: str):
    """A sweep's parent run is never left RUNNING: an interrupt ends it KILLED, an error FAILED."""
    try:
        yield run_id
    except (KeyboardInterrupt, Interrupted):
        tracker.end_run(run_id, "KILLED", "killed", "interrupted")
        raise
    except BaseException as e:
        tracker.end_run(run_id, "FAILED", "failed", f"{type(e).__name__}: {e}")
        raise


@dataclass
class Outcome:
    run_id: str
    name: str
    state: str  # complete | failed | pruned
    summary: dict[str, float] = field(default_factory=dict)
    reason: str | None = None


_DATASETS: dict[str | None, Dataset] = {}


def load_dataset(spec: str | None, progress: Progress | None = None) -> Dataset:
    """Resolve and encode a corpus once per process."""
    if spec not in _DATASETS:
        try:
            corpus = resolve_corpus(spec)
        except CorpusError as e:
            raise UserError(str(e)) from None
        if corpus.notice and progress is not None:
            progress.warn(corpus.notice)
        _DATASETS[spec] = Dataset(corpus)
    return _DATASETS[spec]


def pin_corpus(cfg: RunConfig, dataset: Dataset) -> RunConfig:
    """Record the corpus actually used, so later sweeps read the same one (no fallback)."""
    name = dataset.corpus.name
    return cfg if cfg.data == name else cfg.replace(data=name)


class RunLogger(TrainerHooks):
    """Trainer events -> MLflow (metrics live, samples and checkpoint at the end)."""

    def __init__(
        self,
        tracker: T.Tracker,
        run_id: str,
        staging: Path,
        progress: Progress,
        extra: TrainerHooks | None,
    ):
        self.tracker = tracker
        self.run_id = run_id
        self.staging = staging  # mirrors the run's artifact tree; uploaded in one call
        self.samples = staging / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.extra = extra
        self.best: Path | None = None
        self.last_eval: dict[str, float] = {}
        self.last_step: int | None = None

    def on_step(self, step: int, loss: float, tokens_per_s: float) -> None:
        self.progress.step(step, loss, tokens_per_s)
        if self.extra:
            self.extra.on_step(step, loss, tokens_per_s)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.last_eval = dict(metrics)
        self.last_step = step
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        self.tracker.log_metrics(self.run_id, finite, step, synchronous=False)
        if self.extra:
            self.extra.on_eval(step, metrics)

    def on_checkpoint(self, path: Path, metrics: dict[str, float]) -> None:
        self.best = Path(path)
        if self.extra:
            self.extra.on_checkpoint(path, metrics)

    def on_sample(self, step: int, text: str) -> None:
        (self.samples / f"step-{step}.txt").write_text(text, encoding="utf-8")
        if self.extra:
            self.extra.on_sample(step, text)

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


def train_run(
    tracker: T.Tracker,
    cfg: RunConfig,
    *,
    name: str,
    parent_id: str | None = None,
    tags: dict[str, str] | None = None,
    extra_hooks: TrainerHooks | None = None,
    progress: Progress | None = None,
    stop_exceptions: tuple[type[BaseException], ...] = (),
    expect_sha256: str | None = None,
    run_id: str | None = None,
) -> Outcome:
    """Train `cfg` in a new MLflow run (or `run_id`, already created) and end it properly.

    A diverging or crashing run ends FAILED with its reason and returns; Ctrl-C / SIGTERM
    end it KILLED and propagate; `stop_exceptions` (a pruner's) end it FINISHED with state
    `pruned` and propagate.
    """
    progress = progress or Progress(live=False)
    dataset = load_dataset(cfg.data, progress)
    identity = dataset.identity()
    if expect_sha256 and identity["sha256"] != expect_sha256:
        raise UserError(
            f"the corpus '{cfg.data}' has sha256 {identity['sha256'][:12]}..., but the baseline was "
            f"trained on {expect_sha256[:12]}...; record a new baseline"
        )
    cfg = pin_corpus(cfg, dataset)
    try:
        device = resolve_device(cfg.train.device)
        amp = resolve_amp(cfg.train.amp, device)
        dataset.check_block_size(cfg.gpt.block_size)
    except ConfigError as e:
        raise UserError(f"{e.key}: {e.message}") from None

    amp_name = str(amp).replace("torch.", "") if amp else "fp32"
    all_tags = {
        T.TAG_CONFIG_HASH: cfg.config_hash(),
        T.TAG_SEED: str(cfg.train.seed),
        "sweep.device": device,
        "sweep.amp_dtype": amp_name,
        **(tags or {}),
    }
    if run_id is None:
        run_id = tracker.create_run(name, parent_id=parent_id, tags=all_tags)
    else:
        tracker.set_tags(run_id, all_tags)
    tracker.log_params(run_id, run_params(cfg, identity))
    tracker.log_dataset(run_id, {**identity, "source": dataset.corpus.source})

    progress.run_start(name, cfg.train.max_steps)
    with tempfile.TemporaryDirectory(prefix="sweep-run-") as tmp:
        workdir = Path(tmp)
        staging = workdir / "artifacts"
        staging.mkdir()
        (staging / "config.json").write_text(
            json.dumps(
                {"config": cfg.to_flat(), "dataset": identity, "device": device, "amp": amp_name},
                indent=2,
            ),
            encoding="utf-8",
        )
        logger = RunLogger(tracker, run_id, staging, progress, extra_hooks)
        trainer = Trainer(
            cfg.gpt,
            cfg.train,
            dataset,
            out_dir=workdir / "ckpt",
            hooks=logger,
            sample_config=cfg.sample,
        )
        status, state, reason, summary = "FINISHED", "complete", None, {}
        extra_tags: dict[str, str] = {}
        try:
            summary = trainer.run()
        except DivergenceError as e:
            status, state, reason = "FAILED", "failed", str(e)
            extra_tags[T.TAG_FAILED_STEP] = str(e.step)
        except (KeyboardInterrupt, Interrupted) as e:
            reason = (
                "interrupted (Ctrl-C)"
                if isinstance(e, KeyboardInterrupt)
                else "terminated (SIGTERM)"
            )
            _finish(tracker, logger, run_id, "KILLED", "killed", reason, {})
            progress.run_end(name, "killed", {}, reason)
            raise
        except stop_exceptions as e:
            reason = f"pruned at step {logger.last_step}" + (f": {e}" if str(e) else "")
            tracker.set_tags(run_id, {"sweep.pruned_step": str(logger.last_step)})
            _finish(tracker, logger, run_id, "FINISHED", "pruned", reason, {})
            progress.run_end(name, "pruned", {}, reason)
            raise
        except RuntimeError as e:  # e.g. out of memory: this run fails alone
            status, state, reason = (
                "FAILED",
                "failed",
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            )
        except BaseException as e:
            _finish(tracker, logger, run_id, "FAILED", "failed", f"{type(e).__name__}: {e}", {})
            raise
        if summary:
            metrics = {k: float(summary[k]) for k in SUMMARY_KEYS if k in summary}
            metrics["train_tokens_per_s"] = float(summary.get("tokens_per_s", 0.0))
            step = int(summary.get("steps", cfg.train.max_steps))
            tracker.log_metrics(
                run_id, {k: v for k, v in metrics.items() if math.isfinite(v)}, step
            )
        if extra_tags:
            tracker.set_tags(run_id, extra_tags)
        _finish(tracker, logger, run_id, status, state, reason, summary)
    progress.run_end(name, state, summary, reason)
    return Outcome(run_id=run_id, name=name, state=state, summary=summary, reason=reason)


def _finish(
    tracker: T.Tracker,
    logger: RunLogger,
    run_id: str,
    status: str,
    state: str,
    reason: str | None,
    summary: dict,
) -> None:
    try:
        logger.upload()
    finally:
        tracker.end_run(run_id, status, state, reason)
