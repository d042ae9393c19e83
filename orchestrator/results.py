"""Reading results back: the best run, samples from its checkpoint, the MLflow UI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import tracking as T
from .errors import UserError

TRAINED_ROLES = {"baseline", "baseline-seed", "ablation-run", "search-trial"}


def _has_checkpoint(run: T.RunInfo) -> bool:
    role = run.tags.get(T.TAG_ROLE)
    if role == "baseline" and run.tags.get("sweep.seeds", "1") != "1":
        return False  # a seeded baseline's parent: its children hold the checkpoints
    return role in TRAINED_ROLES


def best_run(tracker: T.Tracker, sweep_id: str | None = None) -> T.RunInfo:
    if sweep_id:
        tracker.get_run(sweep_id)
        runs = tracker.children(sweep_id)
    else:
        runs = tracker.search("attributes.status = 'FINISHED'")
    done = [
        r
        for r in runs
        if r.status == "FINISHED"
        and r.state == "complete"
        and "best_val_loss" in r.metrics
        and _has_checkpoint(r)
    ]
    if not done:
        where = f"sweep {sweep_id}" if sweep_id else f"experiment '{tracker.experiment_name}'"
        raise UserError(f"no finished run in {where} yet: run `sweep baseline` first")
    return min(done, key=lambda r: r.metrics["best_val_loss"])


def sample_run(
    tracker: T.Tracker,
    run_id: str,
    temperature: float,
    top_k: int,
    max_new_tokens: int,
    prompt: str,
    seed: int,
) -> tuple[str, list[str]]:
    from model.sample import (
        CheckpointError,
        PromptError,
        SampleConfig,
        generate_text,
        load_checkpoint,
    )

    cfg = SampleConfig(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens)
    tracker.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="sweep-sample-") as tmp:
        path = tracker.download(run_id, "checkpoints/best.pt", Path(tmp))
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            raise UserError(str(e)) from None
    try:
        return generate_text(ckpt.model, ckpt.tokenizer, cfg, prompt=prompt, seed=seed)
    except PromptError as e:
        raise UserError(str(e)) from None


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
