"""The journal lost under a running study (`rm`, `: >`, replaced), a full disk under it (a
real tmpfs), and the torn line that held a study's link to its parent: real journal files,
Optuna's real JournalStorage, one JournalError naming the journal."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid

import optuna
import pytest

from orchestrator.errors import JournalError, JournalFullError, JournalLostError, StoreError
from orchestrator.studies import journal_failure, open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def new_study(journal, name="s"):
    storage = open_storage(f"journal:{journal}", journal.parent)
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True)


def two_trials(study):
    for v in (1.0, 2.0):
        t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(t, v)


def replace_with_copy(p):
    shutil.copy(p, p.with_suffix(".x"))
    os.replace(p.with_suffix(".x"), p)  # the same bytes, another file


@pytest.mark.parametrize(
    ("lose", "what"),
    [
        (lambda p: p.unlink(), "was deleted"),
        (lambda p: p.write_bytes(b""), "was emptied or cut short (0 bytes; it had {size})"),
        (
            lambda p: os.truncate(p, 100),
            "was emptied or cut short (100 bytes; it had {size})",
        ),
        (replace_with_copy, "was replaced by another file"),
    ],
    ids=["rm", "emptied", "cut-short", "replaced"],
)
def test_a_journal_lost_mid_study_stops_it(tmp_path, lose, what):
    journal = tmp_path / "optuna-journal.log"
    study = new_study(journal)
    two_trials(study)
    size = journal.stat().st_size
    lose(journal)
    with pytest.raises(JournalLostError) as e:
        study.ask()  # before, Optuna carried on against an empty (or recreated) study
    assert str(e.value) == (
        f"the Optuna journal {journal} {what.format(size=size)} while the search ran: its "
        "study went with it, so the search stops; the MLflow runs are intact (restore the "
        "journal to resume, or start a new --study)"
    )
    assert isinstance(e.value, StoreError)  # exit code 1, one line, like any store failure
    with pytest.raises(JournalLostError):  # every later call: the same error, nothing written
        study.get_trials()
    if what == "was deleted":
        assert not journal.exists()  # no new, empty journal appeared in its place


def test_a_journal_that_only_grows_is_never_taken_for_lost(tmp_path, capsys):
    """Two storages on one journal (two workers) interleave writes; a crash elsewhere leaves
    half a line, which the next writer drops (under the lock) before appending: no lost
    journal, no damaged line, nothing lost."""
    journal = tmp_path / "j.log"
    a, b = new_study(journal), new_study(journal)
    two_trials(a)
    two_trials(b)
    torn = b'{"op_code": 4, "worker_id": "crashed-'
    with open(journal, "ab") as f:
        f.write(torn)  # a crash mid-write in a third process
    assert len(b.get_trials()) == 4  # a reader passes over the half line
    two_trials(a)  # the writer drops it first (it shrinks the file, below no whole line)
    assert f"dropped its last line, cut off by a crash mid-write ({len(torn)} bytes)" in (
        capsys.readouterr().err
    )
    two_trials(b)
    c = new_study(journal)
    assert len(c.get_trials()) == len(a.get_trials()) == len(b.get_trials()) == 8
    for line in journal.read_bytes().splitlines():
        json.loads(line)


def test_journal_failure_is_found_under_optunas_unbound_local_error(tmp_path):
    """A storage error inside `study.optimize` makes Optuna's trial runner fail in its
    `finally` (UnboundLocalError 'updated_state'): the JournalError is still found."""
    journal = tmp_path / "j.log"
    study = new_study(journal)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        journal.unlink()  # the user removes the journal while the trial trains
        trial.report(x, 1)
        return x

    with pytest.raises(BaseException) as e:
        study.optimize(objective, n_trials=3)
    found = journal_failure(e.value)
    assert isinstance(found, JournalLostError), repr(e.value)
    assert str(journal) in str(found)
    assert journal_failure(ValueError("x")) is None


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB tmpfs (the tests run as root, as CI does)."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)])
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk, leave: int) -> None:
    """Fill `disk` until about `leave` bytes are free."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_is_one_error_naming_the_journal_and_the_disk(small_disk):
    journal = small_disk / "j.log"
    study = new_study(journal)
    two_trials(study)
    fill(small_disk, 4096)
    with pytest.raises(JournalFullError) as e:
        for i in range(10_000):  # each trial writes a few hundred bytes
            t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
            study.set_user_attr(f"k{i}", "y" * 200)
            study.tell(t, 0.5)
    msg = str(e.value)
    assert msg.startswith(
        f"no space left on the disk holding the Optuna journal {journal} ({small_disk}, "
    )
    assert "bytes free" in msg and "run the same command to resume" in msg
    assert isinstance(e.value, JournalError) and not isinstance(e.value, JournalLostError)
    # what was cut off mid-line was trimmed: every line of the journal is whole JSON
    data = journal.read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)
    # with room again, the study opens and holds everything written before the error
    (small_disk / "filler").unlink()
    again = new_study(journal)
    assert len(again.get_trials()) >= 2
    two_trials(again)


def test_a_disk_too_full_to_create_the_journal(small_disk):
    fill(small_disk, 0)
    with pytest.raises(JournalError) as e:
        new_study(small_disk / "j.log")
    assert str(e.value).startswith("no space left on the disk holding the Optuna journal")
