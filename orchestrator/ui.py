"""`sweep ui`: the MLflow UI on the same store, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from . import tracking as T
from .credentials import redact
from .errors import UserError


def check_bind(host: str, port: int) -> None:
    """Refuse, as one line, a --host that is no address of this machine and a port taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise UserError(f"--host {host!r} is not a host name or address ({why})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is in use; pass --port") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise UserError(
                    f"--host {host} is not an address of this machine; 127.0.0.1 (the default) "
                    "or 0.0.0.0 (every interface) are"
                ) from None
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def ui_command(uri: str, host: str, port: int) -> list[str]:
    # one worker: a person browsing their own runs (MLflow's default starts four)
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
        "--workers",
        "1",
    ]


def ui_environment() -> dict[str, str]:
    """The server's environment: Starlette's deprecation warnings about MLflow's own code
    (nothing a user can act on) silenced, the user's other warning filters kept."""
    quiet = "ignore:starlette.:UserWarning"  # StarletteDeprecationWarning: a UserWarning
    mine = os.environ.get("PYTHONWARNINGS")
    return {**os.environ, "PYTHONWARNINGS": f"{mine},{quiet}" if mine else quiet}


def announce_when_up(
    proc: subprocess.Popen,
    host: str,
    port: int,
    echo: Callable[[str], None],
    what: str,
    runs_page: str | None,
) -> None:
    """Print the URL once the server answers /health (the first start on a loaded machine
    takes tens of seconds), with the address of the runs table; a server that exits or
    never answers is one error line."""
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    where = f"[{local}]" if ":" in local else local
    if not wait_until_answering(proc, f"http://{where}:{port}/health", STARTUP_S):
        stop(proc)
        raise UserError(
            f"the MLflow UI did not start (exit code {proc.returncode}); its messages are above"
        )
    shown = f"[{host}]" if ":" in host else host
    lines = [f"{what} at http://{shown}:{port} (Ctrl-C to stop)"]
    if runs_page:
        lines.append(f"  its runs table: http://{shown}:{port}/{runs_page}")
    echo("\n".join(lines))  # one write: whoever sees the URL sees the runs' address


def wait_until_answering(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """Poll `url` (the server's /health) until it answers; False if the server exits first
    or `timeout` passes."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


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


STARTUP_S = 180.0  # the first start on a loaded machine migrates the store: tens of seconds


def serve_ui(
    tracking_uri: str | None,
    host: str,
    port: int,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    experiment: str | None = None,
) -> int:
    """Run `mlflow ui` on the store until Ctrl-C, SIGTERM or SIGHUP; returns the exit code.
    The server and its workers are one process group, ended with `sweep ui` whatever ends it.
    The URL is printed once the server answers, with the address of `experiment`'s runs
    table; warnings go to `warn` (stderr)."""
    warn = warn or (lambda text: print(text, file=sys.stderr))
    uri = T.resolve_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        T.check_reachable(uri)
        echo(f"the store is a tracking server: open {redact(uri)} in a browser")
        return 0
    T.check_reachable(uri)
    db = T.sqlite_path(uri)
    if db is not None and not db.exists():
        raise UserError(f"no MLflow store at {db}: record a baseline first (`sweep baseline`)")
    check_bind(host, port)
    runs_page = experiment_page(uri, experiment)
    if host not in LOOPBACK:
        warn(
            f"warning: --host {host} serves the MLflow UI and its API without authentication to "
            "every machine that can reach this one: anyone there can read, change and delete "
            "your runs; the default 127.0.0.1 keeps it on this machine"
        )
    proc = subprocess.Popen(
        ui_command(uri, host, port), start_new_session=True, env=ui_environment()
    )
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(proc.pid)], preexec_fn=_die_with_parent
    )

    def interrupt(*_):
        raise KeyboardInterrupt()

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        echo(f"starting the MLflow UI for {redact(uri)} ...")
        what = f"MLflow UI for {redact(uri)}" + (
            f" (experiment '{experiment}')" if runs_page else ""
        )
        announce_when_up(proc, host, port, echo, what, runs_page)
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


# MLflow 3's UI opens an experiment in its GenAI view ("Overview", traces) unless the
# address, or the "Model training" switch the browser remembers, says otherwise: the
# experiment's `mlflow.experimentKind` tag (which the tracker sets) is not what it reads.
RUNS_VIEW = "workflowType=machine_learning"


def experiment_page(uri: str, experiment: str | None) -> str | None:
    """The UI's address (after the host) of the experiment's runs table, in the model
    training view; None when there is no such experiment yet."""
    if not experiment:
        return None
    try:
        tracker = T.Tracker(uri, experiment, create=False)
    except UserError:
        return None
    return f"#/experiments/{tracker.experiment_id}/runs?{RUNS_VIEW}"


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
