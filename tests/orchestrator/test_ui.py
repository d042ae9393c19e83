"""`sweep ui`: a warning off localhost, and its MLflow server dies with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from clitools import one_error_line, sweep
from smoke_store import smoke_store  # noqa: F401  (fixture)

CLI = [sys.executable, "-m", "orchestrator.cli"]


def test_sweep_ui_warns_off_localhost_and_dies_with_its_server(smoke_store, tmp_path):  # noqa: F811
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*CLI, "ui", "--tracking-uri", smoke_store.uri, "--port", str(port), "--host", "0.0.0.0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
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
    out, err = proc.stdout.read(), proc.stderr.read()
    warning = "warning: --host 0.0.0.0 serves the MLflow UI and its API without authentication"
    assert warning in err and warning not in out  # a warning goes to stderr


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("evil host", "--host 'evil host' is not a host name or address"),
        ("10.255.255.254", "--host 10.255.255.254 is not an address of this machine"),
    ],
)
def test_a_bad_host_is_named_not_taken_for_a_port_in_use(smoke_store, host, message):  # noqa: F811
    r = sweep("ui", "--host", host, "--port", "5000", "--tracking-uri", smoke_store.uri)
    assert r.exit_code == 2
    line = one_error_line(r)
    assert message in line and "in use" not in line, line
