"""Fixtures for orchestrator tests: a real MLflow SQLite store in a temp dir, smoke runs."""

from __future__ import annotations

import pytest

SMOKE = {"max_steps": "30", "eval_every": "10"}


@pytest.fixture
def store(tmp_path):
    """Tracking URI of an empty MLflow store in a temp dir."""
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture
def smoke_cfg(corpus_path):
    from orchestrator.config import build

    return build("smoke", dict(SMOKE), data=str(corpus_path))


@pytest.fixture
def tracker(store):
    from orchestrator.tracking import Tracker

    return Tracker(store, "char-gpt")


@pytest.fixture
def baseline_run(tracker, smoke_cfg):
    from orchestrator.baseline import record_baseline

    result = record_baseline(tracker, smoke_cfg, seeds=1)
    assert result.ok
    return tracker.get_run(result.run_id)
