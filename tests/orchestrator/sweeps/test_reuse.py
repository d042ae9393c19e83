"""Never train the same run twice (issue 15): a need met by a finished run of the experiment,
under any role, is linked to it, end to end through the CLI on a real store. A search after a
baseline does not retrain trial 0; a grid point equal to an ablation value reuses that run;
`--retrain` trains anew (and gets the same numbers bit for bit, on the CPU); a run of another
code version is not reused; `sweep sample` on a link samples the run it links to."""

from __future__ import annotations

import pytest
from clitools import sweep
from envs import TINY_SETS, short_corpus

from orchestrator import tracking as T
from orchestrator.tracking import RunState

GRID = "[dropout]\nvalues = [0.0, 0.1]\n"


@pytest.fixture
def ablated(tmp_path, corpus_path):
    """A 2-seed baseline (dropout 0.0) and an ablation of dropout 0.1 on its seeds."""
    corpus = short_corpus(corpus_path, tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # threads pinned: auto follows the load, and the thread count changes float sums; the
    # seeds trained alone, as the search's trials are (a fused group's bf16 sums differ)
    r = sweep("baseline", "--profile", "smoke", *TINY_SETS, "--seeds", "2", "--data", str(corpus),
              "--threads", "1", "--fuse", "off", "--tracking-uri", uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--threads", "1",
              "--tracking-uri", uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    (tmp_path / "grid.toml").write_text(GRID, encoding="utf-8")
    return uri, T.Tracker(uri, "char-gpt", create=False), tmp_path / "grid.toml"


def _trials(tracker, study):
    (parent,) = tracker.search(
        f"tags.`{T.TAG_STUDY}` = '{study}' and tags.`{T.TAG_ROLE}` = 'search'"
    )
    return {r.tags[T.TAG_VALUE].split(":")[1].strip(): r for r in tracker.children(parent.run_id)}


def test_a_search_reuses_the_baseline_and_the_ablation_instead_of_training(ablated):
    uri, tracker, grid = ablated
    base = T.find_baseline(tracker)
    (seed1,) = [r for r in T.baseline_members(tracker, base) if r.tags[T.TAG_SEED] == "1"]
    (ablation,) = T.runs_with_role(tracker, (T.Role.ABLATION,))
    (value1,) = [r for r in tracker.children(ablation.run_id) if r.tags[T.TAG_SEED] == "1"]
    r = sweep("search", "--space", str(grid), "--sampler", "grid", "--trials", "2",
              "--study", "g", "--tracking-uri", uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    trials = _trials(tracker, "g")
    assert set(trials) == {"dropout=0", "dropout=0.1"}
    for point, source in (("dropout=0", seed1), ("dropout=0.1", value1)):
        link = trials[point]
        assert link.state is RunState.REUSED and link.status == "FINISHED"
        assert link.tags[T.TAG_REUSED_FROM] == source.run_id
        assert link.tags[T.TAG_CONFIG_HASH] == source.tags[T.TAG_CONFIG_HASH]
        assert link.metrics["best_val_loss"] == source.metrics["best_val_loss"]
        assert tracker.metric_history(link.run_id, "val_loss") == tracker.metric_history(
            source.run_id, "val_loss"
        )
        assert f"{link.name}: reused from {source.name}" in r.output
    assert (
        "reused from baseline/seed=1" in r.output and "reused from dropout=0.1/seed=1" in r.output
    )
    # nothing was trained: no run of the search holds a checkpoint of its own
    assert all(tracker.list_artifacts(t.run_id) == [] for t in trials.values())
    # `sweep sample` on a link samples the run it links to, and says so
    r = sweep("sample", "--run", trials["dropout=0.1"].run_id, "--max-new-tokens", "8",
              "--tracking-uri", uri)  # fmt: skip
    assert r.exit_code == 0 and f"reused run {value1.name} ({value1.run_id})" in r.output, r.output


def test_retrain_trains_anew_and_gets_the_same_numbers(ablated):
    uri, tracker, grid = ablated
    r = sweep("search", "--space", str(grid), "--sampler", "grid", "--trials", "2",
              "--study", "again", "--retrain", "--threads", "1", "--tracking-uri", uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "reused from" not in r.output
    trained = _trials(tracker, "again")
    assert {t.state for t in trained.values()} == {RunState.COMPLETE}
    base = T.find_baseline(tracker)
    (seed1,) = [r for r in T.baseline_members(tracker, base) if r.tags[T.TAG_SEED] == "1"]
    # the same config, seed, corpus and code train to the same numbers: reuse loses nothing
    assert trained["dropout=0"].metrics["best_val_loss"] == seed1.metrics["best_val_loss"]


def test_a_run_of_another_code_version_is_not_reused(ablated):
    uri, tracker, grid = ablated
    base = T.find_baseline(tracker)
    for run in T.baseline_members(tracker, base):  # as if trained by other training code
        tracker.set_tags(run.run_id, {T.TAG_CODE_VERSION: "0/torch-0.0"})
    r = sweep("search", "--space", str(grid), "--sampler", "grid", "--trials", "2",
              "--study", "old", "--tracking-uri", uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    trials = _trials(tracker, "old")
    assert trials["dropout=0"].state is RunState.COMPLETE  # trained: the baseline's is too old
    assert trials["dropout=0.1"].state is RunState.REUSED  # the ablation's run is current
