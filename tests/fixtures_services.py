"""pytest fixtures for real services: PostgreSQL, `mlflow server`, Chromium.

Loaded as a plugin from tests/conftest.py (pytest runs with
--import-mode=importlib and tests/ is not a package, so it is put on sys.path):

    import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).parent)); pytest_plugins = ["fixtures_services"]

Missing services skip the tests locally and fail them under CI (CI set), where
.ci/run provides SWEEP_TEST_PG_URL, SWEEP_TEST_CHROMIUM, SWEEP_TEST_CHROMEDRIVER.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not a package and pytest uses --import-mode=importlib: make the
# sibling helper module importable however this plugin was loaded.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import services


def _missing(reason: str) -> None:
    """Fail under CI (the service must be there), skip elsewhere."""
    if services.in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Admin URL of the test PostgreSQL server (role with CREATEDB)."""
    url = services.pg_url_from_env()
    if url is None:
        _missing(f"{services.PG_URL_ENV} not set: .ci/run starts PostgreSQL")
    return url


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """URL of a fresh, empty database, dropped afterwards.

    SQLAlchemy form, `postgresql+psycopg2://sweep:sweep@127.0.0.1:5432/NAME`
    (MLflow, Optuna); `services.libpq_url(url)` for psycopg2.connect.
    """
    name = services.unique_db_name()
    url = services.create_database(pg_admin_url, name)
    try:
        yield url
    finally:
        services.drop_database(pg_admin_url, name)


@pytest.fixture
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free port, SQLite-backed, artifacts proxied
    into a tmp dir. Yields its tracking URI, http://127.0.0.1:PORT."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    db = workdir / "mlflow.db"
    proc, url = services.start_mlflow_server_retrying(f"sqlite:///{db}", workdir)
    try:
        yield url
    finally:
        services.stop_process(proc)


@pytest.fixture
def mlflow_server_pg(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Same as mlflow_server, backed by a fresh PostgreSQL database."""
    workdir = tmp_path_factory.mktemp("mlflow-server-pg")
    proc, url = services.start_mlflow_server_retrying(pg_database, workdir)
    try:
        yield url
    finally:
        # Stop the server before pg_database's teardown drops its database.
        services.stop_process(proc)


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver) executables for Selenium.

    Running as root (CI), Chromium needs --no-sandbox; add --headless=new too.
    """
    chromium, driver = services.chromium_paths_from_env()
    missing = [p for p in (chromium, driver) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    if missing:
        _missing(
            f"not executable: {', '.join(missing)} "
            f"(set {services.CHROMIUM_ENV}/{services.CHROMEDRIVER_ENV}; .ci/run installs them)"
        )
    return chromium, driver
