"""A real store shared by the result tests: a smoke baseline (2 seeds) and a dropout ablation.

Built once per test session (about half a minute on 2 CPU cores) under a pytest tmp dir;
test modules import `smoke_store` from here (tests/ is on sys.path through conftest's plugin).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from envs import env_of

DROPOUT_VALUES = ["0.0", "0.2"]  # 0.0 is the smoke baseline's value: the baseline stands for it


@dataclass(frozen=True)
class SmokeStore:
    dir: Path
    uri: str
    experiment: str
    experiment_id: str
    baseline_id: str
    sweep_id: str


_CACHE: dict[str, SmokeStore] = {}


def build_store(root: Path, corpus: Path) -> SmokeStore:
    from orchestrator.config import build
    from orchestrator.sweeps.ablate import run_ablation
    from orchestrator.sweeps.baseline import record_baseline
    from orchestrator.tracking import Tracker

    cfg = build("smoke", {"max_steps": "30", "eval_every": "10"}, data=str(corpus))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = Tracker(uri, "char-gpt")
    base = record_baseline(env_of(tracker), cfg, seeds=2)
    sweep = run_ablation(env_of(tracker), "dropout", DROPOUT_VALUES, seeds=None)
    return SmokeStore(root, uri, "char-gpt", tracker.experiment_id, base.run_id, sweep.parent_id)


@pytest.fixture
def smoke_store(tmp_path_factory, corpus_path) -> SmokeStore:
    """The shared store (built on first use in the session, then reused)."""
    if "store" not in _CACHE:
        _CACHE["store"] = build_store(tmp_path_factory.mktemp("smoke-store"), corpus_path)
    return _CACHE["store"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
