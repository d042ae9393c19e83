"""A journal cut off mid-write (a crash) loses only its torn last line; damage elsewhere is
one clear error naming the file and the way out. Real journal files, real searches."""

from __future__ import annotations

import io
import json

import pytest
from envs import env_of

from orchestrator.errors import UserError
from orchestrator.progress import Progress
from orchestrator.sweeps.search import run_search


def search(tracker, space, journal, trials, stream=None):
    return run_search(
        env_of(tracker, Progress(live=False, stream=stream or io.StringIO())),
        trials=trials,
        space=str(space),
        sampler="random",
        pruner="none",
        seed=0,
        study_name="torn",
        storage=str(journal),
        plots=False,
    )


def test_a_journal_cut_off_mid_write_loses_only_its_torn_line(search_env, tmp_path):
    tracker, _, space = search_env
    journal = tmp_path / "journal.log"
    assert search(tracker, space, journal, 2).counts["complete"] == 2
    whole = journal.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    torn = last[: len(last) // 2]  # half a JSON line, no newline: a crash mid-write
    with open(journal, "ab") as f:
        f.write(torn)
    out = io.StringIO()
    res = search(tracker, space, journal, 3, out)
    assert res.counts["complete"] == 3, res.counts  # the two before, one more, none lost
    assert f"Optuna journal {journal}: dropped its last line" in out.getvalue()
    assert f"({len(torn)} bytes)" in out.getvalue()
    for line in journal.read_bytes().splitlines():  # nothing half-written is left in it
        json.loads(line)
    assert search(tracker, space, journal, 3).counts["complete"] == 3  # and it opens again


def test_a_journal_damaged_in_the_middle_is_one_error_naming_it(search_env, tmp_path):
    tracker, _, space = search_env
    journal = tmp_path / "journal.log"
    search(tracker, space, journal, 1)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines.insert(2, b'{"op_code": 4, "worker_id"\n')
    journal.write_bytes(b"".join(lines))
    before = len(tracker.search())
    with pytest.raises(UserError) as err:
        search(tracker, space, journal, 2)
    message = str(err.value)
    assert str(journal) in message and "line 3" in message and "move the journal aside" in message
    assert len(tracker.search()) == before  # nothing recorded
