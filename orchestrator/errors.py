"""Errors the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing precondition: the message is shown as is, exit code 2."""

    exit_code = 2


class NoBaselineError(UserError):
    pass


class WorkersLost(UserError):
    """Every worker of a search ended before the study held its trials (a job that failed
    to start, a node lost): the search failed, exit code 1."""

    exit_code = 1


class Interrupted(BaseException):
    """Raised by the SIGTERM/SIGHUP handler: the run ends KILLED, like Ctrl-C. Its message
    is the signal's name (`Interrupted("SIGTERM")`)."""


INTERRUPT_EXIT = 130  # 128 + SIGINT: Ctrl-C


def exit_code(e: BaseException) -> int:
    """The shell's code for a process ended by a signal, 128 + its number: 130 for Ctrl-C
    (a plain KeyboardInterrupt), 143 for SIGTERM, 129 for SIGHUP. The signal's name is the
    message of an Interrupted, or of the KeyboardInterrupt a trial turns it into for Optuna."""
    import signal

    try:
        return 128 + signal.Signals[str(e)].value
    except KeyError:
        return INTERRUPT_EXIT


def signal_of(code: int | None) -> str | None:
    """The signal name behind an interrupted process's exit code (130, 143, 129; or -2,
    -15, -1: multiprocessing's code for a process the signal itself ended), or None."""
    import signal

    names = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        names[128 + sig.value] = names[-sig.value] = sig.name  # exited, or killed by it
    return names.get(code) if code is not None else None


class StoreError(Exception):
    """The MLflow store could not be read or did not take a write (full disk, read-only,
    locked, a path too long): one line naming the store and the cause, exit code 1."""

    exit_code = 1


class JournalError(StoreError):
    """The Optuna journal of a search was lost under it (deleted, replaced, emptied) or could
    not be written (a full disk): one line naming the journal, exit code 1. The search stops
    and ends its MLflow runs FAILED with this message (studies.GuardedJournal raises it)."""


class JournalLostError(JournalError):
    pass


class JournalFullError(JournalError):
    pass


def first_line(e: BaseException) -> str:
    """The first line of an exception's message ('' when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def stop_reason(e: BaseException) -> str:
    """Why a run ended, as its `sweep.reason` tag says it: "interrupted (Ctrl-C)",
    "terminated (SIGTERM)" (a signal the command turned into Interrupted), else the error."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(e, Interrupted):
        return f"terminated ({e})"
    return f"{type(e).__name__}: {first_line(e)}"
