"""A journal lost (or a disk filled) under a real `sweep search`: the search stops with one
JournalError naming the journal, nothing is trained twice, nothing is left RUNNING, the
parent run ends FAILED with that line. The loss happens at a real moment of the search: a
real Optuna pruner (BasePruner, Optuna's public interface) does it when trial 1 first
reports, i.e. while trial 1 trains."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid

import optuna
import pytest
from envs import env_of

from orchestrator import tracking as T
from orchestrator.errors import JournalError, JournalFullError, JournalLostError
from orchestrator.studies import open_storage
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import STUDY_PARENT


class LoseAt(optuna.pruners.BasePruner):
    """Never prunes; at trial `number`'s first report, does `lose()` to the journal."""

    def __init__(self, number: int, lose):
        self.number, self.lose, self.done = number, lose, False

    def prune(self, study, trial) -> bool:
        if trial.number == self.number and not self.done:
            self.done = True
            self.lose()
        return False


def filled(disk):
    def fill():
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
            f.write(b"\0" * free)

    return fill


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("how", ["rm", "emptied", "full disk"])
def test_a_search_stops_at_a_lost_journal_with_nothing_trained_twice(
    search_env, tmp_path, small_disk, how
):
    tracker, baseline, space = search_env
    where = small_disk if how == "full disk" else tmp_path
    journal = where / "j.log"
    lose = {
        "rm": journal.unlink,
        "emptied": lambda: journal.write_bytes(b""),
        "full disk": filled(small_disk),
    }[how]
    study = f"lost-{how.replace(' ', '-')}"
    with pytest.raises(JournalError) as e:
        run_search(
            env_of(tracker),
            trials=4,
            space=str(space),
            sampler="random",
            pruner=LoseAt(1, lose),
            study_name=study,
            storage=f"journal:{journal}",
            seed=0,
            baseline_id=baseline.run_id,
            plots=False,
        )
    error = e.value
    assert isinstance(error, JournalFullError if how == "full disk" else JournalLostError)
    assert str(journal) in str(error) and "\n" not in str(error)
    (parent,) = [r for r in tracker.search(f"tags.`{T.TAG_STUDY}` = '{study}'") if not r.parent_id]
    assert parent.state is T.RunState.FAILED
    assert str(journal) in parent.tags[T.TAG_REASON]
    trials = tracker.children(parent.run_id)
    names = sorted(r.name for r in trials)
    assert names == ["trial-0", "trial-1"], names  # each once; nothing after the loss
    assert [r for r in trials if r.state is T.RunState.RUNNING] == []
    by_name = {r.name: r for r in trials}
    assert by_name["trial-0"].state is not T.RunState.FAILED  # trained (or linked) before
    if how != "full disk":  # the write that fails comes at trial 1's next report
        assert by_name["trial-1"].state is T.RunState.FAILED
        assert "Journal" in by_name["trial-1"].tags[T.TAG_REASON]
    else:  # a few bytes still fit in the journal's last page: perhaps only Optuna's `tell`
        assert by_name["trial-1"].state in (T.RunState.FAILED, T.RunState.COMPLETE)


def test_a_torn_parent_link_is_found_again_by_the_next_search(search_env, tmp_path):
    """The link the creator writes last is lost with a torn line: the next `sweep search`
    with the same study finds its parent run from MLflow's side and resumes it."""
    tracker, baseline, space = search_env
    journal = tmp_path / "j.log"
    args = dict(
        trials=1,
        space=str(space),
        sampler="random",
        pruner="none",
        study_name="torn-parent",
        storage=f"journal:{journal}",
        seed=0,
        baseline_id=baseline.run_id,
        plots=False,
    )
    first = run_search(env_of(tracker), **args)
    lines = journal.read_bytes().splitlines(keepends=True)
    link = next(i for i, ln in enumerate(lines) if STUDY_PARENT.encode() in ln)
    # the creator crashed while writing that line: everything after it never happened
    journal.write_bytes(b"".join(lines[:link]) + lines[link][: len(lines[link]) // 2])
    again = run_search(env_of(tracker), **{**args, "trials": 2})
    assert again.parent_id == first.parent_id
    assert tracker.get_run(first.parent_id).state is T.RunState.COMPLETE
    storage = open_storage(f"journal:{journal}", tmp_path)
    study = optuna.load_study(study_name="torn-parent", storage=storage)
    assert study.user_attrs[STUDY_PARENT] == first.parent_id
    assert study.metric_names == ["best_val_loss"]
