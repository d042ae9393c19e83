"""Helpers that start and stop real services for tests (no pytest import).

Used by tests/fixtures_services.py; usable from benchmarks or a REPL too.

- PostgreSQL: `.ci/run` starts a server and exports SWEEP_TEST_PG_URL, an admin
  URL (role `sweep`, CREATEDB) on the `postgres` database; `create_database`
  makes a throw-away database next to it.
- MLflow: `start_mlflow_server` runs a real `mlflow server` subprocess.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PG_URL_ENV = "SWEEP_TEST_PG_URL"
CHROMIUM_ENV = "SWEEP_TEST_CHROMIUM"
CHROMEDRIVER_ENV = "SWEEP_TEST_CHROMEDRIVER"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# ---------------------------------------------------------------- generic ----


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_ci() -> bool:
    """True under CI (CI=true/1/yes/anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def wait_http_ok(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> bool:
    """Poll `url` until it answers 200; False on timeout or when `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    return False


def log_tail(path: Path, n: int = 60) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def stop_process(p: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of `p` (started with start_new_session=True),
    SIGKILL it after `timeout` seconds."""
    if p.poll() is not None:
        # The leader is gone; children (uvicorn workers) may still be alive.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=timeout)
    # Reap anything left in the group (workers that ignored SIGTERM).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)


# ------------------------------------------------------------- PostgreSQL ----


def pg_url_from_env() -> str | None:
    """The admin URL exported by .ci/run (SWEEP_TEST_PG_URL), or None."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    return url or None


def pg_url_with_db(url: str, dbname: str) -> str:
    """`url` with its database (path) replaced by `dbname`; query kept."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def sqlalchemy_pg_url(url: str) -> str:
    """`postgresql+psycopg2://...` form of a `postgresql://` / `postgres://` URL.

    Needed for SQLAlchemy users (MLflow backend store, Optuna RDB storage):
    SQLAlchemy 2.1 maps a bare `postgresql://` to the psycopg (v3) driver, which
    is not installed; only psycopg2-binary is.
    """
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg2://" + rest
    return url


def libpq_url(url: str) -> str:
    """The psycopg2/libpq form: `postgresql://` (drops a `+driver` suffix)."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith(("postgresql+", "postgres+")):
        return "postgresql://" + rest
    return url


def _admin_connect(admin_url: str):
    import psycopg2

    conn = psycopg2.connect(libpq_url(admin_url), connect_timeout=10)
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def unique_db_name(prefix: str = "sweep_test") -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def create_database(admin_url: str, name: str) -> str:
    """CREATE DATABASE `name` (owned by the admin URL's role); return its URL.

    The URL is in SQLAlchemy form, `postgresql+psycopg2://...`, ready for
    `mlflow server --backend-store-uri` and `optuna.create_study(storage=...)`;
    `libpq_url()` turns it back into what psycopg2.connect/psql accept.
    """
    if not _DB_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r} (use [a-z0-9_], max 63 chars)")
    conn = _admin_connect(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return sqlalchemy_pg_url(pg_url_with_db(admin_url, name))


def drop_database(admin_url: str, name: str) -> None:
    """Terminate connections to `name` and DROP DATABASE IF EXISTS."""
    if not _DB_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    conn = _admin_connect(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                # this user's sessions only: a superuser's (autovacuum) cannot be ended
                # here, and DROP ... WITH (FORCE) below ends what is left
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND usename = current_user",
                (name,),
            )
            try:
                # PostgreSQL >= 13: also refuses new connections meanwhile.
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


# ----------------------------------------------------------------- MLflow ----


def mlflow_executable() -> list[str]:
    """The `mlflow` CLI of the running interpreter's environment."""
    script = Path(sys.executable).with_name("mlflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mlflow"]


def start_mlflow_server(
    backend_store_uri: str,
    artifacts_dir: Path,
    port: int,
    log_path: Path,
    timeout: float = 180.0,
    extra_args: list[str] | None = None,
) -> subprocess.Popen:
    """Start a real `mlflow server` on 127.0.0.1:`port`; return once /health is 200.

    Artifacts are proxied by the server (--serve-artifacts) into `artifacts_dir`,
    so clients only need the HTTP tracking URI. On failure the process group is
    killed and RuntimeError carries the tail of `log_path`.
    """
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        *mlflow_executable(),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_dir),
        "--serve-artifacts",
        "--workers", "1",
        *(extra_args or []),
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # MLflow 3's job runner (a handful of huey consumer processes per server) serves nothing
    # these tests use, and on a loaded 2-core machine it delayed /health past a minute
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(artifacts_dir.parent),  # mlflow may write ./mlruns-ish files here
            env=env,
            start_new_session=True,
        )
    if not wait_http_ok(f"http://127.0.0.1:{port}/health", timeout=timeout, proc=proc):
        code = proc.poll()
        stop_process(proc)
        state = f"exited with {code}" if code is not None else f"no /health after {timeout:.0f} s"
        raise RuntimeError(
            f"mlflow server on port {port} {state}; last lines of {log_path}:\n{log_tail(log_path)}"
        )
    return proc


def start_mlflow_server_retrying(
    backend_store_uri: str, workdir: Path, attempts: int = 3, **kwargs
) -> tuple[subprocess.Popen, str]:
    """start_mlflow_server on a fresh free port, retrying when the port got taken.

    Returns (process, "http://127.0.0.1:PORT"). Log: workdir/mlflow-server.log.
    """
    workdir = Path(workdir)
    last: Exception | None = None
    for _ in range(attempts):
        port = free_port()
        try:
            proc = start_mlflow_server(
                backend_store_uri,
                workdir / "artifacts",
                port,
                workdir / "mlflow-server.log",
                **kwargs,
            )
        except RuntimeError as e:
            last = e
            if "address already in use" not in str(e).lower():
                raise
            continue
        return proc, f"http://127.0.0.1:{port}"
    assert last is not None
    raise last


# --------------------------------------------------------------- Chromium ----


def chromium_paths_from_env() -> tuple[str, str]:
    """(chromium, chromedriver) from SWEEP_TEST_CHROMIUM/CHROMEDRIVER or /usr/bin."""
    return (
        os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM,
        os.environ.get(CHROMEDRIVER_ENV) or DEFAULT_CHROMEDRIVER,
    )
