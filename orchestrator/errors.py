"""Errors the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing precondition: the message is shown as is, exit code 2."""

    exit_code = 2


class NoBaselineError(UserError):
    pass


class Interrupted(BaseException):
    """Raised by the SIGTERM/SIGHUP handler: the run ends KILLED, like Ctrl-C."""


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
