"""Fixtures for orchestrator tests: a real MLflow SQLite store in a temp dir, smoke runs.

Search fixtures (`search_env` and its helpers): one tiny baseline is recorded for the whole
session in a store of its own; each test runs its own study (own name, own MLflow parent
run) in that store, so trials take about a second each. Used by search/ and test_studies.py
(the Optuna storage adapter), on the embedded journal storage.
"""

from __future__ import annotations

import pytest
from envs import TINY, env_of, short_corpus

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
    from orchestrator.sweeps.baseline import record_baseline

    result = record_baseline(env_of(tracker), smoke_cfg, seeds=1)
    assert result.ok
    return tracker.get_run(result.run_id)


SPACE = """
[dropout]
low = 0.0
high = 0.3

[lr]
low = 3e-4
high = 3e-3
log = true
"""


@pytest.fixture
def tiny() -> dict[str, str]:
    """Overrides of the smoke profile for a ~1 s run (12 steps, an eval every 4)."""
    return dict(TINY)


@pytest.fixture
def space_text() -> str:
    """A two-key space (dropout range, lr log range)."""
    return SPACE


@pytest.fixture(scope="session")
def search_env(tmp_path_factory, corpus_path):
    """(tracker, baseline run, space path) in a temp store shared by this folder's tests."""
    from orchestrator.config import build
    from orchestrator.sweeps.baseline import record_baseline
    from orchestrator.tracking import Tracker

    root = tmp_path_factory.mktemp("search")
    corpus = short_corpus(corpus_path, root)
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "char-gpt")
    result = record_baseline(env_of(tracker), build("smoke", dict(TINY), data=str(corpus)))
    assert result.ok
    space = root / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    return tracker, tracker.get_run(result.run_id), space


@pytest.fixture(scope="session")
def study_of():
    """study_of(tracker, name): the study `sweep search` keeps in the journal of that store."""
    import optuna

    from orchestrator.studies import open_storage

    def load(tracker, name):
        return optuna.load_study(study_name=name, storage=open_storage(None, tracker.store_dir))

    return load


@pytest.fixture(scope="session")
def history():
    """history(tracker, run_id, key): the steps at which a metric was logged."""

    def steps(tracker, run_id, key):
        return [m.step for m in tracker.client.get_metric_history(run_id, key)]

    return steps
