"""orchestrator.results.groups: which runs count, and the baseline's history, on a real store
(runs recorded through the Tracker, not trained)."""

from __future__ import annotations

import math

import pytest

from orchestrator import tracking as T
from orchestrator.results.groups import history_of, history_sweeps, paired, sweep_groups
from orchestrator.results.table import sweep_table
from orchestrator.tracking import Role, RunState


def _trained(tracker, name, parent, tags, seed, loss, state=RunState.COMPLETE):
    run = tracker.create_run(name, parent_id=parent, tags={**tags, T.TAG_SEED: str(seed)})
    if loss is not None:
        tracker.log_metrics(run, {"best_val_loss": loss}, 60)
    tracker.end_run(run, state)
    return run


@pytest.fixture
def store_with_history(tracker):
    base = tracker.create_run("baseline", tags={T.TAG_ROLE: Role.BASELINE, T.TAG_SEEDS: "3",
                                                T.TAG_SEED_LIST: "1,2,3"})  # fmt: skip
    losses = {1: 2.80, 2: 2.84, 3: 2.82}
    for s, x in losses.items():
        _trained(tracker, f"baseline/seed={s}", base, {T.TAG_ROLE: Role.BASELINE_SEED}, s, x)
    tracker.end_run(base, RunState.COMPLETE)

    def ablation(knob, rows):
        parent = tracker.create_run(f"ablate:{knob}", tags={
            T.TAG_ROLE: Role.ABLATION, T.TAG_KNOB: knob, T.TAG_BASELINE: base})  # fmt: skip
        for value, by_seed in rows.items():
            tags = {T.TAG_ROLE: Role.ABLATION_RUN, T.TAG_KNOB: knob, T.TAG_VALUE: value}
            for s, x in by_seed.items():
                _trained(tracker, f"{knob}={value}/seed={s}", parent, tags, s, x)
        return parent

    first = ablation("dropout", {"0.1": {1: 2.83, 2: 2.86, 3: 2.85}, "0.2": {1: 2.9, 2: 2.93}})
    tracker.end_run(first, RunState.COMPLETE)
    later = ablation("lr", {"0.002": {1: 2.70, 2: 2.75, 3: 2.71}})
    return tracker, losses, tracker.get_run(first), tracker.get_run(later)


def test_history_is_earlier_finished_sweeps_on_the_baseline(store_with_history):
    tracker, losses, first, later = store_with_history
    assert [r.run_id for r in history_sweeps(tracker, later)] == [first.run_id]
    assert history_sweeps(tracker, first) == []  # nothing began before it
    arrays = history_of(tracker, [first], losses)
    assert len(arrays) == 2
    assert arrays[0] == pytest.approx({1: 0.03, 2: 0.02, 3: 0.03})
    assert arrays[1] == pytest.approx({1: 0.10, 2: 0.09})
    # a still running sweep is not history yet
    tracker.reopen(first.run_id)
    assert history_sweeps(tracker, tracker.get_run(later.run_id)) == []


def test_a_table_records_its_losses_and_history_reads_them_back(store_with_history):
    tracker, losses, first, later = store_with_history
    tags = sweep_table(tracker, first).tags()
    assert tags[T.TAG_HISTORY] == "" and tags[T.TAG_TABLE_SEEDS] == "1,2,3"
    tracker.set_tags(first.run_id, tags)
    recorded = tracker.get_run(first.run_id)
    from_runs = history_of(tracker, [first], losses)
    assert history_of(tracker, [recorded], losses) == from_runs
    # the sweeps a table used are recorded with it and read back, whatever began later
    tracker.set_tags(later.run_id, sweep_table(tracker, later).tags())
    assert tracker.get_run(later.run_id).tags[T.TAG_HISTORY] == first.run_id


def test_what_counts_per_seed(store_with_history):
    tracker, _, first, _ = store_with_history
    # seed 3 of dropout=0.2: killed (retrained, not counted), then diverged at a step
    tags = {T.TAG_ROLE: Role.ABLATION_RUN, T.TAG_KNOB: "dropout", T.TAG_VALUE: "0.2"}
    _trained(tracker, "dropout=0.2/seed=3", first.run_id, tags, 3, None, RunState.KILLED)
    run = _trained(tracker, "dropout=0.2/seed=3", first.run_id, tags, 3, None, RunState.FAILED)
    tracker.set_tags(run, {T.TAG_FAILED_STEP: "7"})
    _, groups = sweep_groups(tracker, first)
    got = paired(next(g for g in groups if g.value == "0.2").losses())
    assert set(got) == {1, 2, 3} and math.isnan(got[3])
