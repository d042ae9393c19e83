"""`sweep ui`: the MLflow UI on the same store, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from .. import tracking as T
from ..errors import UserError


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


def serve_ui(
    tracking_uri: str | None, host: str, port: int, echo: Callable[[str], None] = print
) -> int:
    """Run `mlflow ui` on the store until Ctrl-C; returns the exit code."""
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
    proc = subprocess.Popen(ui_command(uri, host, port), start_new_session=True)
    echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")
    previous = signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        echo("MLflow UI stopped")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
