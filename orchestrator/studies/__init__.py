"""The Optuna storage adapter: where a study lives, and opening it.

Infrastructure, like `tracking/`: the search strategy uses it to run studies, `sweep plot`
and reports use it to read them back. Default: a journal file next to the MLflow store
(several local worker processes, no "database is locked"); a `*.log` path or
`journal:PATH`: a journal there; a database URL (`postgresql://...`): `RDBStorage` with
heartbeats, so a worker killed mid-trial has its trial failed (and retried) on any machine.
Passwords never leave this module: labels and tags carry the redacted URL. journal.py: the
journal file (torn lines, a journal lost mid-search, a full disk: JournalError).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..credentials import redact, scrub
from ..errors import JournalError, JournalFullError, JournalLostError, UserError, first_line
from ..paths import JOURNAL_NAME, journal_path
from .journal import GuardedJournal, journal_failure, open_journal

HEARTBEAT_ENV = "SWEEP_HEARTBEAT_S"  # seconds between heartbeats on an RDB storage
DEFAULT_HEARTBEAT_S = 15

__all__ = [
    "JOURNAL_NAME",
    "GuardedJournal",
    "JournalError",
    "JournalFullError",
    "JournalLostError",
    "figures_optuna",
    "heartbeat_seconds",
    "is_journal",
    "journal_failure",
    "load_recorded_study",
    "open_storage",
    "redact",
    "storage_label",
    "storage_tag",
]


def heartbeat_seconds() -> int:
    raw = os.environ.get(HEARTBEAT_ENV, str(DEFAULT_HEARTBEAT_S))
    try:
        value = int(raw)
        if value < 1:
            raise ValueError
    except ValueError:
        raise UserError(f"{HEARTBEAT_ENV}={raw}: must be a whole number of seconds >= 1") from None
    return value


def is_journal(url: str | None) -> bool:
    return url is None or url.endswith(".log") or url.startswith("journal:")


def _journal_file(url: str | None, store_dir: Path) -> Path:
    return (
        journal_path(store_dir) if url is None else Path(url.removeprefix("journal:")).expanduser()
    )


def open_storage(
    url: str | None,
    store_dir: Path,
    on_stale: Callable[[Any, Any], None] | None = None,
    warn: Callable[[str], None] | None = None,
):
    """The Optuna storage for `--storage url` (None: the journal next to the store).

    A journal whose last line was cut off (a crash mid-write) loses that line, with a
    warning (`warn`, default: a line on stderr); damage elsewhere is a UserError."""
    import optuna

    if is_journal(url):
        path = _journal_file(url, store_dir)
        if not path.parent.is_dir():
            raise UserError(f"directory for the Optuna journal does not exist: {path.parent}")
        return open_journal(path, warn or _stderr_warning)
    if "://" not in url:
        raise UserError(
            f"--storage {url}: expected postgresql://user:pass@host/db (or another database URL) "
            "or a .log file"
        )
    hb = heartbeat_seconds()
    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=hb,
                grace_period=max(2, 2 * hb),
                heartbeat_stale_trial_callback=on_stale,
                engine_kwargs={"pool_pre_ping": True},
            )
        except Exception as e:  # bad URL, unreachable server, missing driver
            # Workers starting together on a fresh database race to create Optuna's tables:
            # the loser sees a unique violation and finds the tables there on the next try.
            text = str(e)
            if "already exists" in text or "UniqueViolation" in text or "duplicate key" in text:
                time.sleep(0.5 + attempt)
                continue
            first = scrub(text.splitlines()[0], url) if text else type(e).__name__
            raise UserError(f"cannot open the Optuna storage {redact(url)}: {first}") from None
    raise UserError(
        f"cannot open the Optuna storage {redact(url)}: its tables could not be created"
    )


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def storage_label(url: str | None, store_dir: Path) -> str:
    """For people: `journal PATH` or the URL without its password."""
    return f"journal {_journal_file(url, store_dir)}" if is_journal(url) else redact(url)


def storage_tag(url: str | None, store_dir: Path) -> str:
    """Recorded on a search's parent run: the journal's absolute path, or the URL without
    its password (such a URL cannot be reopened from the tag alone)."""
    if is_journal(url):
        return str(_journal_file(url, store_dir).resolve())
    return redact(url)


def load_recorded_study(store_dir: Path, study_name: str, tag: str | None):
    """The study a search recorded in its `sweep.storage` tag: (study, None), or (None, a
    note saying why it cannot be read)."""
    import optuna

    url = tag
    try:
        if url is None or "://" not in url:  # a journal file
            path = Path(url) if url else journal_path(store_dir)
            if not path.is_file():
                return None, f"no Optuna journal at {path}"
            url = f"journal:{path}"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(url, store_dir)
        return optuna.load_study(study_name=study_name, storage=storage), None
    except Exception as e:  # unreachable database, a redacted password, missing study, ...
        first = first_line(e) or type(e).__name__
        return None, f"Optuna study '{study_name}' cannot be read ({first})"


OPTUNA_FIGURES = (  # (file name, optuna.visualization.matplotlib function, complete trials needed)
    ("optimization_history", "plot_optimization_history", 1),
    ("param_importances", "plot_param_importances", 2),
    ("parallel_coordinate", "plot_parallel_coordinate", 2),
)


def figures_optuna(
    study, plt, figsize: tuple[float, float]
) -> tuple[list[tuple[str, Any]], list[str]]:
    """Optuna's own views of a study, as (name, matplotlib figure) pairs, and notes on what
    was skipped. Optuna's functions switch matplotlib to its own style: `rc_context` keeps
    that inside, so figures drawn afterwards (reports) keep the default look."""
    import warnings

    import matplotlib
    import optuna
    import optuna.visualization.matplotlib as ovm

    figs, notes = [], []
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for name, fn, need in OPTUNA_FIGURES:
        if len(complete) < need:
            notes.append(f"{name}: needs {need} complete trials (have {len(complete)}); not drawn")
            continue
        try:
            with matplotlib.rc_context(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(ovm, fn)(study)
        except Exception as e:  # e.g. importances when no parameter varied yet
            plt.close("all")
            first = first_line(e) or type(e).__name__
            notes.append(f"{name}: not drawn ({first})")
            continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(*figsize)
        figs.append((name, fig))
    return figs, notes
