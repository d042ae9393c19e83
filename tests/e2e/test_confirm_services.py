"""`sweep search --confirm` on the set-up of several machines: Optuna on PostgreSQL, MLflow on
a real `mlflow server` backed by PostgreSQL (here on one machine, as .ci/run starts them)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import services
from envs import TINY, env_of, short_corpus

from orchestrator import tracking as T
from orchestrator.config import build
from orchestrator.results.table import sweep_table
from orchestrator.sweeps.baseline import record_baseline
from orchestrator.tracking import Role, RunState, Tracker

pytestmark = pytest.mark.slow


@pytest.fixture
def optuna_db(pg_admin_url):
    name = services.unique_db_name("sweep_confirm")
    url = services.create_database(pg_admin_url, name)
    try:
        yield url
    finally:
        services.drop_database(pg_admin_url, name)


def test_search_then_confirm_on_postgresql_and_an_mlflow_server(
    tmp_path, mlflow_server_pg, optuna_db, corpus_path
):
    corpus = short_corpus(corpus_path, tmp_path)
    tracker = Tracker(mlflow_server_pg, "char-gpt")
    assert record_baseline(
        env_of(tracker), build("smoke", dict(TINY), data=str(corpus)), seeds=2
    ).ok
    space = tmp_path / "space.toml"
    space.write_text("[lr]\nlow = 3e-4\nhigh = 3e-3\nlog = true\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "orchestrator.cli", "search", "--trials", "3", "--space",
           str(space), "--study", "s", "--storage", optuna_db, "--tracking-uri", mlflow_server_pg,
           "--pruner", "none", "--sampler", "random", "--seed", "1", "--confirm", "1"]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "confirm run" in out.stdout
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = '{Role.CONFIRM}'")
    assert parent.state is RunState.COMPLETE and parent.name == "confirm:s"
    children = tracker.children(parent.run_id)
    assert all(r.state is RunState.COMPLETE for r in children)
    # fresh seeds (the search trained seed 1): 2, 3, 4 first, then one at a time until the
    # row is decided, up to 10
    seeds = sorted(int(r.tags[T.TAG_SEED]) for r in children)
    assert seeds == list(range(2, 2 + len(seeds))) and 3 <= len(seeds) <= 10
    table = sweep_table(tracker, parent)
    (row,) = table.variants
    assert row.seeds == len(seeds) and row.pairing in ("paired", "paired, pooled")
    assert row.verdict.value in ("better", "worse", "equivalent") or len(seeds) == 10
    assert set(tracker.list_artifacts(parent.run_id)) >= {"table.csv", "table.md"}
    assert not tracker.search("attributes.status = 'RUNNING'")
