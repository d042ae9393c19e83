"""`--tracking-uri http://user:password@host:port` against MLflow's own basic-auth server
(`mlflow server --app-name basic-auth`, Flask-WTF from the dev extras): the real `sweep`
records a baseline through it, reads it back, and no output shows the password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import services

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "p@ss:S3cret-123"  # '@' and ':' must survive the URL (percent-encoded)
ENCODED = "p%40ss%3AS3cret-123"


@pytest.fixture
def auth_server(tmp_path_factory, monkeypatch):
    """A basic-auth `mlflow server` whose admin has ADMIN_PASSWORD; yields its bare URL."""
    workdir = tmp_path_factory.mktemp("mlflow-auth")
    ini = workdir / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{workdir / 'basic_auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n"  # one PBKDF2 check per password, not per request
    )
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(ini))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "sweep-test-only")
    proc, url = services.start_mlflow_server_retrying(
        f"sqlite:///{workdir / 'mlflow.db'}", workdir, extra_args=["--app-name", "basic-auth"]
    )
    try:
        yield url
    finally:
        services.stop_process(proc)


def run_sweep(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_authenticated_tracking_uri_works_and_stays_secret(auth_server, corpus_path, tmp_path):
    host = auth_server.removeprefix("http://")
    uri = f"http://admin:{ENCODED}@{host}"
    r = run_sweep(
        ["baseline", "--profile", "smoke", "--data", str(corpus_path), "--tracking-uri", uri],
        tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert f"(http://{host})" in out  # the store is named, without the user-info
    r = run_sweep(["best", "--tracking-uri", uri], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "best run: baseline" in r.stdout
    out += r.stdout + r.stderr
    # a wrong password and none at all: one line each, exit 2
    r = run_sweep(["best", "--tracking-uri", f"http://admin:wrong-{ENCODED}@{host}"], tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: the MLflow tracking server at http://admin:***@{host} did not accept the "
        "password of user 'admin' (HTTP 401)"
    )
    out += r.stdout + r.stderr
    r = run_sweep(["best", "--tracking-uri", auth_server], tmp_path)
    assert r.returncode == 2 and "needs a user name and password" in r.stderr
    for secret in (ADMIN_PASSWORD, ENCODED, "S3cret"):
        assert secret not in out
    # the run is really on the server, and readable with the credentials MLflow's way
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN_PASSWORD
    try:
        client = MlflowClient(auth_server)
        exp = client.get_experiment_by_name("char-gpt")
        runs = client.search_runs([exp.experiment_id])
        assert [r.info.run_name for r in runs] == ["baseline"]
        assert runs[0].info.status == "FINISHED"
        assert "checkpoints" in [a.path for a in client.list_artifacts(runs[0].info.run_id)]
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
