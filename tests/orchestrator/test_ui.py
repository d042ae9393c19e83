"""`sweep ui`: a warning off localhost, and its MLflow server dies with it."""

from __future__ import annotations

import os
import signal
import time

from clitools import (
    sweep_process,
)
from smoke_store import smoke_store  # noqa: F401  (fixture)


def test_sweep_ui_warns_off_localhost_and_dies_with_its_server(smoke_store, tmp_path):  # noqa: F811
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sweep_process(
        ["ui", "--tracking-uri", smoke_store.uri, "--port", str(port), "--host", "0.0.0.0"],
        tmp_path,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read())
    os.kill(proc.pid, signal.SIGKILL)  # sweep ui dies hard: its server must not live on
    proc.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the MLflow server still listens on {port} after sweep ui died")
    out = proc.stdout.read()
    assert "warning: --host 0.0.0.0 serves the MLflow UI and its API without authentication" in out
