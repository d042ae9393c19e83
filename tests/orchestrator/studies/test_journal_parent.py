"""The torn journal line that held a study's link to its MLflow parent (the creator crashed
while writing it, the last thing it writes): the study opens without the link, and the link
is found again from MLflow's side (`tracking.find_search`) and written back, so the study
name stays usable. `search/study.py`'s join_parent calls this path (see the lead's wiring)."""

from __future__ import annotations

import io

import optuna

from orchestrator import tracking as T
from orchestrator.progress import Progress
from orchestrator.studies import open_storage
from orchestrator.sweeps.search.attrs import STUDY_BASELINE, STUDY_PARENT, STUDY_SPACE


def test_a_torn_parent_link_is_found_again(tracker, tmp_path):
    journal = tmp_path / "optuna-journal.log"
    parent = tracker.create_run(
        "search:torn-link",
        tags={T.TAG_ROLE: T.Role.SEARCH, T.TAG_STUDY: "torn-link", T.TAG_BASELINE: "b" * 32},
    )
    tracker.create_run("search:other", tags={T.TAG_ROLE: T.Role.SEARCH, T.TAG_STUDY: "other"})
    study = optuna.create_study(
        study_name="torn-link", storage=open_storage(f"journal:{journal}", tmp_path)
    )
    study.set_user_attr(STUDY_BASELINE, "b" * 32)
    study.set_user_attr(STUDY_SPACE, "fingerprint")
    study.enqueue_trial({"x": 0.5})
    study.set_user_attr(STUDY_PARENT, parent)  # the last line the creator writes
    whole = journal.read_bytes()
    last = whole[:-1].rsplit(b"\n", 1)[1]
    assert parent.encode() in last
    journal.write_bytes(whole[: len(whole) - len(last) // 2 - 1])  # a crash mid-write
    out = io.StringIO()
    storage = open_storage(
        f"journal:{journal}", tmp_path, warn=Progress(live=False, stream=out).warn
    )
    assert "dropped its last line, cut off by a crash mid-write" in out.getvalue()
    study = optuna.load_study(study_name="torn-link", storage=storage)
    assert STUDY_PARENT not in study.user_attrs  # the link is gone; everything before is kept
    assert study.user_attrs[STUDY_BASELINE] == "b" * 32
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1
    found = T.find_search(tracker, "torn-link", baseline_id=study.user_attrs[STUDY_BASELINE])
    assert found is not None and found.run_id == parent
    assert T.find_search(tracker, "torn-link", baseline_id="c" * 32) is None
    assert T.find_search(tracker, "nothing") is None
    study.set_user_attr(STUDY_PARENT, found.run_id)
    again = optuna.load_study(
        study_name="torn-link", storage=open_storage(f"journal:{journal}", tmp_path)
    )
    assert again.user_attrs[STUDY_PARENT] == parent
