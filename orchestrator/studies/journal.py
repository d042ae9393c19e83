"""The Optuna journal file under a search: a torn last line (a crash mid-write) dropped, a
write cut off by a full disk trimmed, and a journal lost while a search runs (deleted,
replaced, emptied) or a full disk turned into one JournalError naming the file, instead of a
search carrying on against an empty study or Optuna's `AssertionError: Should not reach.`
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import JournalError, JournalFullError, JournalLostError, UserError


def open_journal(path: Path, warn: Callable[[str], None]):
    """The JournalStorage on `path`, its torn last line (if any) dropped first, watched by
    GuardedJournal (a lost journal or a full disk is a JournalError)."""
    from optuna.storages.journal import JournalStorage

    lock = JournalLock(path, warn)
    try:
        if path.is_file() and path.stat().st_size:
            lock.acquire()  # drops a torn last line
            lock.release()
        return JournalStorage(GuardedJournal(path, lock))
    except OSError as e:  # creating the file: a full disk, a read-only folder
        raise write_error(path, e) from None
    except ValueError as e:  # json.JSONDecodeError, or Optuna's "Invalid log format."
        line = damaged_line(path)
        where = f"line {line}" if line else "a line"
        raise UserError(
            f"Optuna journal {path} is damaged ({where}: {e}); the MLflow runs are intact: "
            f"move the journal aside and start a new --study, or delete {where} of it"
        ) from None


class JournalLock:
    """The journal's lock: Optuna's JournalFileSymlinkLock, which every append holds, so that
    with it held a last line without its newline is no write in progress but what a crash
    (or a full disk) left. Taken, it drops such a line (with a warning); before letting go
    it trims what a failed append of its own left. Either way the next append never glues
    its line onto half a line, which would damage the journal for every reader. Optuna's
    BaseJournalFileLock interface, not subclassed, so that this module imports optuna only
    when a storage is opened."""

    def __init__(self, path: Path, warn: Callable[[str], None]):
        from optuna.storages.journal import JournalFileSymlinkLock

        self.path = Path(path)
        self.warn = warn
        self.lock = JournalFileSymlinkLock(str(path))
        self.size: int | None = None  # the journal's size when the lock was taken

    def acquire(self) -> bool:
        got = self.lock.acquire()
        try:
            self.size = None
            if self.path.is_file() and self.path.stat().st_size:
                dropped = drop_torn_tail(self.path)
                if dropped:
                    self.warn(
                        f"Optuna journal {self.path}: dropped its last line, cut off by a "
                        f"crash mid-write ({dropped} bytes); the trials before it are kept"
                    )
            self.size = self.path.stat().st_size
        except FileNotFoundError:
            pass  # JournalFileBackend creates it
        except BaseException:
            self.lock.release()
            raise
        return got

    def release(self) -> None:
        try:
            if self.size is not None:
                with contextlib.suppress(OSError), open(self.path, "r+b") as f:
                    end = f.seek(0, os.SEEK_END)
                    if end > self.size and f.seek(end - 1) >= 0 and f.read(1) != b"\n":
                        f.truncate(self.size)
        finally:
            self.size = None
            self.lock.release()


class GuardedJournal:
    """Optuna's JournalFileBackend on `path`, which stops the search when the journal is lost
    under it instead of carrying on against an empty study: the file deleted (`rm`), replaced
    (another inode, or another first line), or emptied or cut short (`: >`) between two
    operations; and turns a failed write (a full disk) into one JournalError naming the
    journal. A journal only grows: JournalLock cuts only a tail without
    its newline, never below a size at which the file ended with one, which is what
    `seen` records. Once lost, every later call raises the same error. Optuna's
    BaseJournalBackend interface (read_logs, append_logs), not subclassed (see JournalLock)."""

    HEAD = 256  # bytes of the first line(s) compared at each operation

    def __init__(self, path: Path, lock: JournalLock):
        from optuna.storages.journal import JournalFileBackend

        self.path = Path(path)
        self.backend = JournalFileBackend(str(path), lock_obj=lock)  # creates the file
        st = self.path.stat()
        self.inode = (st.st_dev, st.st_ino)
        self.seen, self.head = 0, b""
        self.lost: JournalError | None = None

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        self.check()
        whole = self.whole_lines()
        logs = list(self.backend.read_logs(log_number_from))
        self.check()
        self.remember(whole)
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.check()
        try:
            self.backend.append_logs(logs)
        except OSError as e:
            raise write_error(self.path, e) from None
        self.check()
        self.remember(self.whole_lines())

    def whole_lines(self) -> int | None:
        """The journal's size if it ends with a newline (no write cut off), else None."""
        with contextlib.suppress(OSError), open(self.path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end == 0 or (f.seek(end - 1) >= 0 and f.read(1) == b"\n"):
                return end
        return None

    def remember(self, size: int | None) -> None:
        if size is not None and size > self.seen:
            self.seen = size
            if len(self.head) < self.HEAD:
                with contextlib.suppress(OSError), open(self.path, "rb") as f:
                    self.head = f.read(min(size, self.HEAD))

    def check(self) -> None:
        if self.lost is None:
            self.lost = self.what_happened()
        if self.lost is not None:
            raise self.lost

    def what_happened(self) -> JournalError | None:
        try:
            st = self.path.stat()
            with open(self.path, "rb") as f:
                head = f.read(len(self.head))
        except FileNotFoundError:
            return JournalLostError(lost_message(self.path, "was deleted"))
        except OSError as e:
            return JournalError(f"cannot read the Optuna journal {self.path}: {e.strerror or e}")
        if (st.st_dev, st.st_ino) != self.inode:
            return JournalLostError(lost_message(self.path, "was replaced by another file"))
        if st.st_size < self.seen:
            what = f"was emptied or cut short ({st.st_size} bytes; it had {self.seen})"
            return JournalLostError(lost_message(self.path, what))
        if head != self.head:
            return JournalLostError(lost_message(self.path, "was rewritten from its start"))
        return None


def lost_message(path: Path, what: str) -> str:
    return (
        f"the Optuna journal {path} {what} while the search ran: its study went with it, so "
        "the search stops; the MLflow runs are intact (restore the journal to resume, or "
        "start a new --study)"
    )


def write_error(path: Path, e: OSError) -> JournalError:
    """One line for an OSError writing the journal; a full disk names the disk and its room."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        disk = mount_point(path)
        with contextlib.suppress(OSError):
            vfs = os.statvfs(path.parent)
            disk = f"{disk}, {vfs.f_bavail * vfs.f_frsize:,} bytes free"
        return JournalFullError(
            f"no space left on the disk holding the Optuna journal {path} ({disk}): the search "
            "stops, the trials recorded before are kept; free space there and run the same "
            "command to resume"
        )
    return JournalError(f"cannot write to the Optuna journal {path}: {e.strerror or e}")


def mount_point(path: Path) -> Path:
    path = Path(path).resolve().parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def journal_failure(exc: BaseException | None) -> JournalError | None:
    """The JournalError that `exc` is or was raised while handling (Optuna's trial runner,
    failing to record a trial after a storage error, raises an UnboundLocalError from a
    `finally` on top of it), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, JournalError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def drop_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline (call with the journal's lock held); bytes cut.
    Opened for writing only when there is something to cut (a read-only journal reads)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0 or (f.seek(size - 1) >= 0 and f.read(1) == b"\n"):
            return 0
    with open(path, "r+b") as f:
        keep, chunk = 0, 1 << 16  # just after the last newline (0: no whole line at all)
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            nl = f.read(pos - start).rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


def damaged_line(path: Path) -> int | None:
    """The number (from 1) of the first line of the journal that is not a JSON object."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                if not raw.endswith(b"\n") or not isinstance(json.loads(raw), dict):
                    return number
            except ValueError:
                return number
    return None
