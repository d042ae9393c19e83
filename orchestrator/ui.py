"""`sweep ui`: the MLflow UI on the same store, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from . import tracking as T
from .errors import UserError


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ui_command(uri: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]


LOOPBACK = ("127.0.0.1", "localhost", "::1")

# Ends the UI server's process group when `sweep ui` dies, even by SIGKILL: the kernel sends
# this watchdog SIGTERM when its parent goes (PR_SET_PDEATHSIG), and it ends the group.
WATCHDOG = """
import os, signal, sys, time
group = int(sys.argv[1])
def end(*_):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        time.sleep(3)
    os._exit(0)
signal.signal(signal.SIGTERM, end)
signal.signal(signal.SIGHUP, end)
while os.getppid() != 1:
    time.sleep(1)
end()
"""


def _die_with_parent() -> None:
    """In the watchdog, before exec: be sent SIGTERM when the parent process dies (Linux)."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def serve_ui(
    tracking_uri: str | None, host: str, port: int, echo: Callable[[str], None] = print
) -> int:
    """Run `mlflow ui` on the store until Ctrl-C, SIGTERM or SIGHUP; returns the exit code.
    The server and its workers are one process group, ended with `sweep ui` whatever ends it."""
    uri = T.resolve_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        T.check_reachable(uri)
        echo(f"the store is a tracking server: open {uri} in a browser")
        return 0
    T.check_reachable(uri)
    db = T.sqlite_path(uri)
    if db is not None and not db.exists():
        raise UserError(f"no MLflow store at {db}: record a baseline first (`sweep baseline`)")
    if not port_free(host, port):
        raise UserError(f"port {port} on {host} is in use; pass --port")
    if host not in LOOPBACK:
        echo(
            f"warning: --host {host} serves the MLflow UI and its API without authentication to "
            "every machine that can reach this one: anyone there can read, change and delete "
            "your runs; the default 127.0.0.1 keeps it on this machine"
        )
    proc = subprocess.Popen(ui_command(uri, host, port), start_new_session=True)
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(proc.pid)], preexec_fn=_die_with_parent
    )
    echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")

    def interrupt(*_):
        raise KeyboardInterrupt()

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        echo("MLflow UI stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        watchdog.kill()
        watchdog.wait()


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
