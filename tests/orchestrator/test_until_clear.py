"""Verdicts people can act on, end to end on the smoke profile with real runs and a real store:
paired verdicts, seed identity, and seeds added until the answer is clear."""

from __future__ import annotations

import pytest

from orchestrator import tracking as T
from orchestrator.ablate import run_ablation
from orchestrator.baseline import record_baseline
from orchestrator.errors import UserError
from orchestrator.results.table import Settings, sweep_table
from orchestrator.results.verdicts import DEFAULT_MARGIN


@pytest.fixture
def three_seeds(tracker, smoke_cfg):
    result = record_baseline(tracker, smoke_cfg, seeds=3)
    assert result.ok
    return tracker.get_run(result.run_id)


def _row(tracker, parent_id, value):
    df = sweep_table(tracker, tracker.get_run(parent_id))
    return df[df["value"] == value].iloc[0]


def test_memory_only_change_is_equivalent_and_a_tiny_lr_is_worse(tracker, three_seeds):
    # dropout is 0 in the smoke profile: accumulation over 2 micro-batches changes memory only
    acc = run_ablation(tracker, "grad_accum_steps", ["2"])
    row = _row(tracker, acc.parent_id, "2")
    assert row["seeds"] == 3 and row["pairing"] == "paired"
    assert -DEFAULT_MARGIN < row["delta_ci_low"] <= row["delta_ci_high"] < DEFAULT_MARGIN
    assert row["verdict"] == "equivalent"
    slow = run_ablation(tracker, "lr", ["0.00001"])
    row = _row(tracker, slow.parent_id, "1e-05")
    assert row["verdict"] == "worse" and row["delta_ci_low"] > 0 and row["p_adjusted"] < 0.05
    parent = tracker.get_run(slow.parent_id)  # margin and alpha recorded with the sweep
    assert float(parent.tags["sweep.margin"]) == DEFAULT_MARGIN
    assert float(parent.tags["sweep.alpha"]) == 0.05


def test_a_seed_is_trained_and_counted_once_whatever_seeds_said(tracker, smoke_cfg):
    record_baseline(tracker, smoke_cfg, seeds=2)
    first = run_ablation(tracker, "dropout", ["0.1"], seeds=2)
    again = run_ablation(tracker, "dropout", ["0.1"], seeds=1)  # seed 1 again, named differently
    assert again.parent_id == first.parent_id and again.trained == []
    assert len(tracker.children(first.parent_id)) == 2
    row = _row(tracker, first.parent_id, "0.1")
    assert row["seeds"] == 2 and row["pairing"] == "paired"


def test_a_bit_identical_variant_shows_a_delta_of_exactly_zero(tracker, three_seeds):
    # the smoke profile's amp=auto trains in bf16 on a CPU with native bf16 (this CI's
    # avx512_bf16 EPYC) and in fp32 elsewhere: the value it resolves to is bit-identical
    from model.train import cpu_has_native_bf16

    same = "bf16" if cpu_has_native_bf16() else "off"
    result = run_ablation(tracker, "amp", [same], seeds=2)
    row = _row(tracker, result.parent_id, same)
    assert row["seeds"] == 2  # compared on the baseline's seeds 1 and 2 only
    assert row["delta"] == 0.0 and row["delta_ci_low"] == 0.0 and row["delta_ci_high"] == 0.0
    assert row["verdict"] == "equivalent"


def test_until_clear_adds_seeds_to_both_sides_and_stops_at_the_cap(tracker, smoke_cfg):
    base = record_baseline(tracker, smoke_cfg, seeds=2)
    # a value far off stops at the first look; a small change stays open until --max-seeds
    result = run_ablation(tracker, "dropout", ["0.05"], until_clear=True, max_seeds=3)
    baseline = tracker.get_run(base.run_id)
    assert T.baseline_seeds(baseline) == [1, 2, 3]  # the baseline got seed 3 too
    assert len(T.baseline_members(tracker, baseline)) == 3
    row = _row(tracker, result.parent_id, "0.05")
    assert row["seeds"] == 3 and row["pairing"] == "paired"
    parent = tracker.get_run(result.parent_id)
    assert Settings.recorded(parent).sequential == (2, 3)
    if row["verdict"] == "inconclusive":
        assert row["seeds_needed"] > 3
    slow = run_ablation(tracker, "lr", ["0.00001"], until_clear=True, max_seeds=3)
    row = _row(tracker, slow.parent_id, "1e-05")
    assert row["verdict"] == "worse" and row["seeds"] == 3  # the baseline's 3 seeds, paired
    assert slow.looks == 1  # decided at its first look: no seed added for it


def test_until_clear_bad_input_records_nothing(tracker, smoke_cfg):
    record_baseline(tracker, smoke_cfg, seeds=1)
    before = len(tracker.search())
    with pytest.raises(UserError, match="needs a baseline with 2 or more seeds"):
        run_ablation(tracker, "dropout", ["0.1"], until_clear=True)
    record_baseline(tracker, smoke_cfg, seeds=3)
    before = len(tracker.search())
    with pytest.raises(UserError, match="--max-seeds 2 is below the 3 seeds"):
        run_ablation(tracker, "dropout", ["0.1"], until_clear=True, max_seeds=2)
    with pytest.raises(UserError, match="--max-seeds goes with --until-clear"):
        run_ablation(tracker, "dropout", ["0.1"], max_seeds=5)
    assert len(tracker.search()) == before
