"""Where `sweep` writes files next to the MLflow store, and the slugs in their names.

Tables go to `<store>/sweep-tables/`, figures to `<store>/sweep-plots/<sweep>/`, reports to
`<store>/sweep-reports/`; the Optuna journal is `<store>/optuna-journal.log`. For a remote
tracking server the store directory is the current directory.
"""

from __future__ import annotations

from pathlib import Path

JOURNAL_NAME = "optuna-journal.log"


def slug(text: str) -> str:
    """A file-name-safe form of a run or experiment name: one path component, never `.` or
    `..` (`-e ..` would put a run's artifacts outside mlruns/): leading dots become dashes."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    stripped = safe.lstrip(".")
    return ("-" * (len(safe) - len(stripped)) + stripped) or "sweep"


def run_slug(name: str, run_id: str) -> str:
    return f"{slug(name)}-{run_id[:8]}"


def tables_dir(store_dir: Path) -> Path:
    return store_dir / "sweep-tables"


def plots_dir(store_dir: Path) -> Path:
    return store_dir / "sweep-plots"


def reports_dir(store_dir: Path) -> Path:
    return store_dir / "sweep-reports"


def journal_path(store_dir: Path) -> Path:
    return store_dir / JOURNAL_NAME
