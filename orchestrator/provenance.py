"""What code trained a run: the git commit (when run from a repository) and the versions of
sweep, torch, mlflow and optuna, recorded as tags on every run."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("sweep", "torch", "mlflow", "optuna")


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def git_commit(where: Path | None = None) -> str | None:
    """The commit of the checkout sweep runs from (with `+dirty` for uncommitted changes)."""
    root = where or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@functools.cache
def tags() -> dict[str, str]:
    from .tracking.schema import TAG_GIT_COMMIT, TAG_VERSION_PREFIX

    out = {f"{TAG_VERSION_PREFIX}{p}": version(p) for p in PACKAGES}
    commit = git_commit()
    if commit:
        out[TAG_GIT_COMMIT] = commit
    return out
