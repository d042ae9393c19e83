"""orchestrator.results.compute: training FLOPs and compute to target, against hand computations."""

from __future__ import annotations

import csv
import io
import math

import pytest

from orchestrator.results import compute
from orchestrator.results.export import render
from orchestrator.results.groups import Group
from orchestrator.results.table import build_table
from orchestrator.tracking import RunInfo

# A tiny config: L=2 layers, width d=16, context T=8, vocabulary V=65, batch 4, 100 steps.
SHAPE = {"n_layer": "2", "n_embed": "16", "block_size": "8", "batch_size": "4",
         "max_steps": "100", "dataset.vocab_size": "65"}  # fmt: skip


def _run(i: int, params: float, loss: float = 2.0, seed: int = 1, **shape: str) -> RunInfo:
    metrics = {"params": params, "best_val_loss": loss}
    return RunInfo(f"r{i}", f"run{i}", "FINISHED", {**SHAPE, **shape}, metrics,
                   {"sweep.state": "complete", "sweep.seed": str(seed)}, i, "")  # fmt: skip


def test_flops_per_token_by_hand():
    # non-embedding N = 10000 - V·d - T·d = 10000 - 1040 - 128 = 8832
    # 6·N = 52992; attention 12·L·d·T = 12·2·16·8 = 3072
    assert compute.flops_per_token(10_000, 2, 16, 8, 65) == 52_992 + 3_072 == 56_064


def test_flops_per_step_and_train_flops_from_a_recorded_run():
    run = _run(0, 10_000)
    # tokens per step = batch · block = 32
    assert compute.flops_per_step(run) == 56_064 * 32 == 1_794_048
    assert compute.train_flops(run) == 1_794_048 * 100 == 179_404_800
    # a run without its config recorded: NaN, never a made-up number
    bare = RunInfo("x", "x", "FINISHED", {}, {"params": 10_000}, {}, 0, "")
    assert math.isnan(compute.flops_per_step(bare)) and math.isnan(compute.train_flops(bare))
    assert math.isnan(compute.train_flops(_run(1, 10_000, max_steps="many")))


def _group(value: str, runs: list[RunInfo], curve, base: bool = False) -> Group:
    return Group("n_embed", value, runs, base, {1: curve})


BASE_CURVE = [(10, 3.0), (20, 2.5), (30, 2.2)]  # best 2.2, reached at step 30


def _ratio(base: Group, g: Group) -> float:
    return compute.row_to_target(base.curves, g.curves, base.runs, g.runs, [1], 0.05).ratio


def test_compute_to_target_by_hand():
    base = _group("16", [_run(0, 10_000)], BASE_CURVE, base=True)
    # same FLOPs per step; crosses 2.2 between step 10 (2.8) and 20 (2.1), linearly at
    # 10 + 10·(2.8 - 2.2)/(2.8 - 2.1) = 18.571: 18.571/30 of the baseline's compute
    fast = _group("16b", [_run(1, 10_000)], [(10, 2.8), (20, 2.1), (30, 2.0)])
    assert _ratio(base, fast) == pytest.approx((10 + 10 * 0.6 / 0.7) / 30)
    # a wider model: params 20000, N = 18832, per token 6·18832 + 3072 = 116064; it
    # reaches 2.2 exactly at step 20
    wide = _group("32", [_run(2, 20_000)], [(10, 2.6), (20, 2.2), (30, 2.0)])
    expected = (116_064 * 32 * 20) / (56_064 * 32 * 30)
    assert _ratio(base, wide) == pytest.approx(expected)  # 1.38: dearer
    # never reaches the baseline's best: inf, printed `never`; nothing recorded: NaN
    never = _group("8", [_run(3, 10_000)], [(10, 3.1), (20, 2.6), (30, 2.3)])
    assert _ratio(base, never) == math.inf
    assert math.isnan(_ratio(base, Group("n_embed", "0", [_run(4, 10_000)], False, {})))


def test_the_table_prints_compute_to_target_with_its_interval():
    base = _group("16", [_run(0, 10_000)], BASE_CURVE, base=True)
    fast = _group("12", [_run(1, 10_000, 2.1)], [(10, 2.8), (20, 2.1), (30, 2.1)])
    never = _group("8", [_run(2, 10_000, 2.3)], [(10, 3.1), (20, 2.6), (30, 2.3)])
    table = build_table(base, [fast, never])
    df = table.to_frame()
    assert df["train_flops"].tolist() == [179_404_800] * 3
    assert df.loc[0, "compute_to_target"] == 1.0
    assert df.loc[1, "compute_to_target"] == pytest.approx((10 + 10 * 0.6 / 0.7) / 30)
    assert df.loc[2, "compute_to_target"] == math.inf
    # one seed: the seed bootstrap has nothing to resample, the interval is the point
    assert df.loc[1, "compute_to_target_low"] == df.loc[1, "compute_to_target_high"]
    lines = render(table, "md").splitlines()
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    assert [row[-1] for row in cells] == ["1.00x", "0.62x", "never"]
    header, *rows = list(csv.reader(io.StringIO(render(table, "csv"))))
    assert {"compute_to_target_low", "compute_to_target_high"} <= set(header)
    assert rows[2][header.index("compute_to_target")] == "inf"
