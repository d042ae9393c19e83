"""Train one spec into its MLflow run: params, dataset, metrics, samples, checkpoint.

Every run, whatever sweep asked for it, logs exactly the same things. The `Trainer` runs with
a list of hooks (the MLflow logger first, then the spec's, e.g. the Optuna pruner's), and the
run ends in a `RunState`: never left RUNNING. The run itself is created by the sweep (which
names it, tags it and makes sure no other process trains the same config into it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from model.train import TRAIN_CODE_VERSION, DivergenceError, Trainer, TrainerHooks

from .. import provenance
from .. import tracking as T
from ..config import RunConfig
from ..errors import Interrupted, StoreError, first_line, stop_reason
from ..tracking import RunState
from .env import WORKDIR_PREFIX, Prepared, RunEnv
from .spec import Outcome, RunSpec

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


def code_version() -> str:
    """What trained a run, as far as its numbers go: the training code's version and torch's
    (recorded as `sweep.code_version`; a run is reused only by the same code version)."""
    import torch

    return f"{TRAIN_CODE_VERSION}/torch-{torch.__version__}"


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


class ArtifactError(RuntimeError):
    """The store did not keep a run's artifacts whole: the run cannot end FINISHED."""


class RunLogger(TrainerHooks):
    """Trainer events -> MLflow (metrics live, samples and checkpoint at the end) and progress."""

    def __init__(self, env: RunEnv, run_id: str, staging: Path, max_steps: int = 0):
        self.tracker = env.tracker
        self.progress = env.progress
        self.run_id = run_id
        self.staging = staging  # mirrors the run's artifact tree; uploaded in one call
        self.samples = staging / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        # samples/step-0020.txt ... step-1000.txt: zero-padded to the run's last step, so the
        # MLflow UI and list_artifacts (which sort by name) list them in step order
        self.step_width = len(str(max(max_steps, 1)))
        self.best: Path | None = None
        self.last_step: int | None = None
        self.show_steps = True  # a fused group's members: only the first moves the bar
        self.who: str | None = None  # a fused member's name on its eval lines

    def on_step(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self.show_steps:
            self.progress.step(step, loss, tokens_per_s)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.last_step = step
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        self.tracker.log_metrics(self.run_id, finite, step, synchronous=False)
        self.progress.eval(step, metrics, who=self.who)

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


def run_params(cfg: RunConfig, identity: dict[str, Any]) -> dict[str, Any]:
    params = dict(cfg.to_flat())
    params.update({f"dataset.{k}": v for k, v in identity.items()})
    return params


def run_tags(ready: Prepared) -> dict[str, str]:
    """What every trained run carries about how and by what it was trained."""
    cfg = ready.cfg
    return {
        T.TAG_CONFIG_HASH: cfg.config_hash(),
        T.TAG_SEED: str(cfg.train.seed),
        T.TAG_DEVICE: ready.device,
        T.TAG_AMP: ready.amp,
        T.TAG_THREADS: str(ready.threads),
        T.TAG_CODE_VERSION: code_version(),
        **provenance.tags(),
    }


def record_start(env: RunEnv, run_id: str, ready: Prepared, tags: dict[str, str]) -> None:
    """Tags, params and the dataset input of a run about to train."""
    tracker, identity = env.tracker, ready.dataset.identity()
    tracker.set_tags(run_id, {**run_tags(ready), **tags})
    tracker.log_params(run_id, run_params(ready.cfg, identity))
    tracker.log_dataset(run_id, {**identity, "source": ready.dataset.corpus.source})


def config_json(ready: Prepared) -> str:
    return json.dumps(
        {
            "config": ready.cfg.to_flat(),
            "dataset": ready.dataset.identity(),
            "device": ready.device,
            "amp": ready.amp,
            "threads": ready.threads,
            "code_version": code_version(),
        },
        indent=2,
    )


def train(env: RunEnv, spec: RunSpec) -> Outcome:
    """Train `spec` into its run (`spec.run_id`, created by the sweep) and end it.

    A diverging or crashing run ends FAILED with its reason and returns; Ctrl-C / SIGTERM
    end it KILLED and propagate; `spec.stop_on` exceptions (a pruner's) end it PRUNED and
    propagate.
    """
    assert spec.run_id is not None, "the sweep creates the run"
    ready = env.prepare(spec.cfg)
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        staging = Path(tmp) / "artifacts"
        staging.mkdir()
        trainer = Trainer(
            ready.cfg.gpt,
            ready.cfg.train,
            ready.dataset,
            out_dir=Path(tmp) / "ckpt",
            sample_config=ready.cfg.sample,
        )
        # auto threads are chosen when the run starts (the load now): record that choice
        ready = replace(ready, threads=trainer.threads)
        record_start(env, spec.run_id, ready, spec.tags)
        (staging / "config.json").write_text(config_json(ready), encoding="utf-8")
        logger = RunLogger(env, spec.run_id, staging, ready.cfg.train.max_steps)
        trainer.hooks = HookList([logger, *spec.hooks])
        env.progress.run_start(spec.name, ready.cfg.train.max_steps)
        outcome = _run(env, trainer, logger, spec)
    env.progress.run_end(spec.name, outcome.state, outcome.summary, outcome.reason)
    return outcome


def _run(env: RunEnv, trainer: Trainer, logger: RunLogger, spec: RunSpec) -> Outcome:
    run_id, name = spec.run_id, spec.name
    assert run_id is not None
    state, reason, summary = RunState.COMPLETE, None, {}
    try:
        summary = trainer.run()
    except DivergenceError as e:
        state, reason = RunState.FAILED, str(e)
        env.tracker.set_tags(run_id, {T.TAG_FAILED_STEP: str(e.step)})
    except (KeyboardInterrupt, Interrupted) as e:
        reason = stop_reason(e)
        finish(env, logger, run_id, RunState.KILLED, reason)
        env.progress.run_end(name, RunState.KILLED, {}, reason)
        raise
    except spec.stop_on as e:
        reason = f"pruned at step {logger.last_step}" + (f": {e}" if str(e) else "")
        env.tracker.set_tags(run_id, {T.TAG_PRUNED_STEP: str(logger.last_step)})
        finish(env, logger, run_id, RunState.PRUNED, reason)
        env.progress.run_end(name, RunState.PRUNED, {}, reason)
        raise
    except RuntimeError as e:  # e.g. out of memory: this run fails alone
        state, reason = RunState.FAILED, f"{type(e).__name__}: {first_line(e)}"
    except BaseException as e:
        finish(env, logger, run_id, RunState.FAILED, f"{type(e).__name__}: {first_line(e)}")
        raise
    if summary:
        log_summary(env, run_id, summary, trainer.cfg.max_steps)
    finish(env, logger, run_id, state, reason)
    return Outcome(run_id=run_id, name=name, state=state, summary=summary, reason=reason)


def log_summary(env: RunEnv, run_id: str, summary: dict[str, float], max_steps: int) -> None:
    metrics = {k: float(summary[k]) for k in SUMMARY_KEYS if k in summary}
    metrics["train_tokens_per_s"] = float(summary.get("tokens_per_s", 0.0))
    step = int(summary.get("steps", max_steps))
    env.tracker.log_metrics(run_id, {k: v for k, v in metrics.items() if math.isfinite(v)}, step)


def finish(
    env: RunEnv, logger: RunLogger, run_id: str, state: RunState, reason: str | None
) -> None:
    """Upload and verify the artifacts, then end the run. A run is FINISHED only with its
    artifacts stored whole; else it ends FAILED with the reason (and resume retrains it)."""
    try:
        logger.upload()
    except Exception as e:
        why = f"could not store the run's artifacts: {type(e).__name__}: {first_line(e)}"
        ending = state if state in (RunState.KILLED, RunState.FAILED) else RunState.FAILED
        # if the store refuses this write too, the next command that writes ends the run
        with contextlib.suppress(Exception):
            env.tracker.end_run(run_id, ending, f"{reason}; {why}" if reason else why)
        if ending is state:
            return  # killed or failed anyway: that is what propagates
        raise StoreError(f"{env.tracker.uri}: {why}") from None
    env.tracker.end_run(run_id, state, reason)
