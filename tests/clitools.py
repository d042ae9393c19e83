"""Running `sweep` as a user does, for the tests: in-process (CliRunner) or as a real process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner


def sweep(*args: str, env: dict | None = None):
    from orchestrator.cli import app

    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def one_error_line(result_or_text) -> str:
    out = getattr(result_or_text, "output", result_or_text).strip()
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, out
    return lines[0]


def sweep_process(
    args: list[str], cwd: Path, env: dict | None = None, preexec_fn=None
) -> subprocess.Popen:
    """`sweep ARGS` as its own process (and process group), output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )


def wait_for_running(
    tracker, proc: subprocess.Popen, roles: tuple[str, ...], timeout: float = 120.0
):
    """The first RUNNING run of one of `roles` that has logged an eval (val_loss)."""
    from orchestrator import tracking as T

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        for run in T.running(tracker):
            if run.tags.get(T.TAG_ROLE) in roles and "val_loss" in run.metrics:
                return run
        time.sleep(0.05)
    raise AssertionError("no run reached its first eval in time")


LONG = ["--set", "max_steps=5000", "--set", "eval_every=5"]
SHORT = ["--set", "max_steps=20", "--set", "eval_every=10"]


def env_with_tmp(tmp_path: Path) -> dict:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}


def baseline_args(store: str, corpus: Path, *more: str) -> list[str]:
    return ["baseline", "--profile", "smoke", "--data", str(corpus), "--tracking-uri", store, *more]


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
        ).returncode
    ):
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
