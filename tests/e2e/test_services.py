"""The service fixtures work: real `mlflow server` (SQLite and PostgreSQL
backed), a throw-away PostgreSQL database, Chromium paths."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest


def _roundtrip(url: str, tmp_path: Path) -> None:
    """Experiment, run, metric and a text artifact through the HTTP server."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment("fixture-check")
    run = client.create_run(exp_id)
    run_id = run.info.run_id
    client.log_param(run_id, "n_layer", "4")
    for step, loss in enumerate([2.5, 2.0, 1.75]):
        client.log_metric(run_id, "val_loss", loss, step=step)
    note = tmp_path / "note.txt"
    note.write_text("hello from the fixture\n")
    client.log_artifact(run_id, str(note))
    client.set_terminated(run_id)

    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["n_layer"] == "4"
    assert got.data.metrics["val_loss"] == 1.75
    history = client.get_metric_history(run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.5), (1, 2.0), (2, 1.75)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
    local = client.download_artifacts(run_id, "note.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "hello from the fixture\n"
    assert client.get_experiment_by_name("fixture-check").experiment_id == exp_id


@pytest.mark.slow
def test_mlflow_server_sqlite(mlflow_server: str, tmp_path: Path) -> None:
    assert mlflow_server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{mlflow_server}/health", timeout=5) as resp:
        assert resp.status == 200
    _roundtrip(mlflow_server, tmp_path)


@pytest.mark.slow
def test_pg_database_is_fresh_and_writable(pg_database: str) -> None:
    import psycopg2
    import services

    assert pg_database.startswith("postgresql+psycopg2://")
    with psycopg2.connect(services.libpq_url(pg_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (0,)
        cur.execute("CREATE TABLE t (x int)")
        cur.execute("INSERT INTO t VALUES (1)")
        cur.execute("SELECT x FROM t")
        assert cur.fetchall() == [(1,)]
    conn.close()


@pytest.mark.slow
def test_optuna_rdb_storage_on_postgres(pg_database: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="fixture-check", storage=pg_database)
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2, n_trials=3)
    again = optuna.load_study(study_name="fixture-check", storage=pg_database)
    assert len(again.trials) == 3


@pytest.mark.slow
def test_mlflow_server_postgres(mlflow_server_pg: str, tmp_path: Path) -> None:
    with urllib.request.urlopen(f"{mlflow_server_pg}/health", timeout=5) as resp:
        assert resp.status == 200
    _roundtrip(mlflow_server_pg, tmp_path)


def test_chromium_paths(chromium_paths: tuple[str, str]) -> None:
    chromium, driver = chromium_paths
    assert Path(chromium).is_file()
    assert Path(driver).is_file()
