"""`sweep`: the command line. Thin: parses, delegates, owns exit codes.

common (the app, shared options, `handled` -> exit codes), train (baseline, ablate,
search), read (table, best, sample, plot, report, ui). Heavy packages (torch, mlflow,
optuna, pandas) are imported inside the commands, so `sweep --help` answers at once.

Exit codes: 0 done; 1 a run failed or an unexpected error; 2 bad input or a missing
precondition (one line, no traceback); interrupted, 128 + the signal: 130 Ctrl-C (SIGINT),
143 SIGTERM, 129 SIGHUP (runs end KILLED, never RUNNING).
"""

from __future__ import annotations

from . import train  # noqa: F401  (registers baseline, ablate, search, confirm: shown first)

# isort: split
from . import read  # noqa: F401  (registers table, best, sample, plot, report, ui)
from .common import app


def main() -> None:
    app()
