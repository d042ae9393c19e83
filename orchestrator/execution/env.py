"""`RunEnv`: what every run of one command shares, built once per command.

The tracker and the progress display; the run-only settings the command was given (torch
threads: how a run executes, not what it trains, so outside the config hash); where its runs
train (`launcher`: on this machine, or as Slurm jobs, slurm_runs.py); the corpora,
resolved and encoded once; and each config checked once (corpus pinned, checksum compared
with the baseline's, the trainer's own checks), however often a plan, the estimate and the
runner ask for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from model.data import CorpusError, Dataset, resolve_corpus
from model.errors import ConfigError

from .. import tracking as T
from ..config import RunConfig, notes
from ..errors import UserError
from ..progress import Progress

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


class Launcher(Protocol):
    """Where runs train when not on this machine (slurm_runs.SlurmLauncher: a job array)."""

    name: str  # as --launcher says it
    detach: bool  # the command returns once its jobs are submitted (a search)

    @property
    def cpus(self) -> int:
        """CPUs each job has."""
        ...


@dataclass(frozen=True)
class Prepared:
    """A config ready to train: pinned to the corpus it reads, with that corpus, and where
    and in what precision it trains here (what a reused run must have trained in too)."""

    cfg: RunConfig
    dataset: Dataset
    device: str
    amp: str  # the autocast dtype `amp` resolves to here: bf16, fp16 or fp32
    threads: int


@dataclass
class RunEnv:
    tracker: T.Tracker
    progress: Progress = field(default_factory=lambda: Progress(live=False))
    threads: int | None = None  # run-only override of every config's `threads`
    retrain: bool = False  # train again what a finished run of another sweep already has
    expect_sha256: str | None = None  # the baseline's corpus: anything else is refused
    launcher: Launcher | None = None  # where runs train: None here, else Slurm jobs
    fuse: str = "auto"  # same-shape runs as one fused group: auto (where it pays), on, off
    fuse_max: int | None = None  # members a group may have at most (None: what memory allows)
    _datasets: dict[str | None, Dataset] = field(default_factory=dict, repr=False)
    _prepared: dict[tuple[str, int], Prepared] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        remove_dead_workdirs()

    def run_only(self, cfg: RunConfig) -> RunConfig:
        """`cfg` with the command's run-only settings (threads) applied."""
        if self.threads is None or cfg.train.threads == self.threads:
            return cfg
        return cfg.replace(threads=self.threads)

    def dataset(self, spec: str | None) -> Dataset:
        """Resolve and encode a corpus once; a corpus error is one line for the user."""
        if spec not in self._datasets:
            try:
                corpus = resolve_corpus(spec)
            except CorpusError as e:
                raise UserError(str(e)) from None
            self._datasets[spec] = Dataset(corpus)
        return self._datasets[spec]

    def prepare(self, cfg: RunConfig) -> Prepared:
        """The config pinned to its corpus and checked (once per config): the corpus against
        the baseline's checksum, everything the trainer would refuse, as one line."""
        cfg = self.run_only(cfg)
        key = (cfg.config_hash(), cfg.train.threads)
        if key in self._prepared:
            return self._prepared[key]
        from model.train import Trainer

        dataset = self.dataset(cfg.data)
        sha = dataset.identity()["sha256"]
        if self.expect_sha256 and sha != self.expect_sha256:
            raise UserError(
                f"the corpus '{cfg.data}' has sha256 {sha[:12]}..., but the baseline was "
                f"trained on {self.expect_sha256[:12]}...; record a new baseline"
            )
        name = dataset.corpus.name
        cfg = cfg if cfg.data == name else cfg.replace(data=name)
        try:
            trainer = Trainer(
                cfg.gpt,
                cfg.train,
                dataset,
                out_dir=Path(tempfile.gettempdir()),
                sample_config=cfg.sample,
            )
        except ConfigError as e:
            raise UserError(f"{e.key}: {e.message}") from None
        amp = str(trainer.dtype).replace("torch.", "") if trainer.dtype else "fp32"
        ready = Prepared(cfg, dataset, trainer.device, amp, trainer.threads)
        self._prepared[key] = ready
        self._prepared[(cfg.config_hash(), cfg.train.threads)] = ready
        return ready

    def check(self, cfg: RunConfig) -> RunConfig:
        """Refuse a bad config before anything is recorded; say what trains but not as meant."""
        ready = self.prepare(cfg)
        for note in notes(ready.cfg):
            self.progress.warn(note)
        return ready.cfg
