"""orchestrator.results.table: rows from groups of runs, decided by anytime.decide_table on the
seeds that count, with one meaning per cell."""

import csv
import io
import math

import pytest

from orchestrator.results.anytime import decide_table
from orchestrator.results.export import render
from orchestrator.results.settings import Settings
from orchestrator.results.table import Group, build_table
from orchestrator.results.verdicts import Verdict
from orchestrator.tracking import RunInfo


def _run(i, loss, state="complete", status="FINISHED", seed=None, **tags):
    metrics = (
        {}
        if loss is None
        else {
            "best_val_loss": loss,
            "best_val_ppl": math.exp(loss) if math.isfinite(loss) else loss,
            "final_train_loss": loss - 0.1,
            "final_val_loss": loss + 0.01,
            "best_step": 30.0,
            "train_tokens_per_s": 1000.0,
            "wall_s": 1.0,
            "params": 100.0,
        }
    )
    seed_tag = {"sweep.seed": str(seed)} if seed is not None else {}
    tags = {"sweep.state": state, **seed_tag, **tags}
    return RunInfo(f"r{i}", f"run{i}", status, {}, metrics, tags, i, "")


def _diverged(i, seed):
    return _run(i, None, "failed", "FAILED", seed, **{"sweep.failed_step": "7",
                "sweep.reason": "non-finite loss (nan) at step 7"})  # fmt: skip


BASE = {1: 2.00, 2: 2.02, 3: 2.01, 4: 2.03}


def _base(seeds=BASE):
    return Group("k", "b", [_run(s, x, seed=s) for s, x in seeds.items()], True)


def _variant(value, losses, first=100):
    return Group("k", value, [_run(first + s, x, seed=s) for s, x in losses.items()])


def test_cells_cover_the_same_seeds_and_subtract_to_the_delta():
    three = {1: 1.90, 2: 1.93, 3: 1.905}  # no seed 4: compared on seeds 1-3 only
    single = {2: 2.2}  # one seed: against the baseline's seed 2, not its mean
    table = build_table(_base(), [_variant("a", three), _variant("s", single, 200)])
    df = table.to_frame()
    base, a, s = df.loc[0], df.loc[1], df.loc[2]
    assert (base["seeds"], base["best_val_loss"]) == (4, pytest.approx(2.015))
    assert base["baseline_val_loss"] == base["best_val_loss"] and base["delta"] == 0.0
    assert (a["seeds"], a["seed_list"]) == (3, "1,2,3")
    assert a["baseline_val_loss"] == pytest.approx((2.00 + 2.02 + 2.01) / 3)
    assert a["best_val_loss"] - a["baseline_val_loss"] == pytest.approx(a["delta"], abs=1e-12)
    assert a["delta"] == pytest.approx(((1.90 - 2.00) + (1.93 - 2.02) + (1.905 - 2.01)) / 3)
    assert a["delta_pct"] == pytest.approx(100 * a["delta"] / a["baseline_val_loss"])
    # the single-seed row: the delta is against baseline seed 2 and the columns subtract to it
    assert (s["seeds"], s["seed_list"], s["verdict"]) == (1, "2", "single seed")
    assert (s["best_val_loss"], s["baseline_val_loss"]) == (2.2, 2.02)
    assert s["delta"] == pytest.approx(2.2 - 2.02, abs=1e-15)
    assert math.isnan(s["delta_ci_low"]) and math.isnan(s["p_adjusted"])
    printed = render(table, "table").splitlines()[4].split()
    assert printed[3:6] == ["2.2000", "2.0200", "+0.1800"]  # value, baseline, delta


def test_rows_are_the_decisions_of_decide_table_on_the_counted_seeds():
    losses = {
        "a": {1: 1.90, 2: 1.93, 3: 1.905, 4: 1.94},
        "z": {1: 2.001, 2: 2.024, 3: 2.008, 4: 2.031},
    }
    settings = Settings(alpha=0.05, margin=0.02)
    table = build_table(_base(), [_variant(v, x, 10 * i) for i, (v, x) in enumerate(
        losses.items(), start=1)], settings)  # fmt: skip
    decided = decide_table(BASE, list(losses.values()), 0.05, 0.02)
    for row, d in zip(table.variants, decided, strict=True):
        assert row.verdict is d.verdict and row.label == d.label
        assert (row.delta, row.delta_ci_low, row.delta_ci_high) == (d.delta, d.ci_low, d.ci_high)
        assert row.pooled == d.pooled and row.pairing == (
            "paired, pooled" if d.pooled else "paired"
        )
        # the anytime p-value: 1/e, the row's running evidence; times K = 2 rows
        assert row.p_value == pytest.approx(min(1.0, 1 / d.e_value))
        assert row.p_adjusted == pytest.approx(min(1.0, 2 / d.e_value))
        assert (row.p_adjusted <= 0.05) == (row.verdict in (Verdict.BETTER, Verdict.WORSE))
    assert [r.verdict for r in table.variants] == [Verdict.BETTER, Verdict.EQUIVALENT]


def test_a_diverged_seed_is_counted_a_crash_and_an_interrupt_are_not():
    base = _base({1: 2.00, 2: 2.02, 3: 2.01})
    # seed 2 diverged (failed at a step): counted, the row cannot read better
    diverging = Group("k", "d", [_run(11, 1.5, seed=1), _diverged(12, 2), _run(13, 1.51, seed=3)])
    # a finished run without a finite best val loss is a diverged seed too
    nan = Group("k", "n", [_run(21, 1.5, seed=1), _run(22, math.nan, seed=2)])
    # a crash (failed without a step) and an interrupt are retrained, not counted
    crashed = Group("k", "c", [
        _run(31, 2.0, seed=1),
        _run(32, None, "failed", "FAILED", 2, **{"sweep.reason": "RuntimeError: out of memory"}),
        _run(33, None, "killed", "KILLED", 3),
    ])  # fmt: skip
    gone = Group("k", "g", [_diverged(41, 1), _diverged(42, 2), _diverged(43, 3)])
    df = build_table(base, [diverging, nan, crashed, gone]).to_frame()
    assert list(df["verdict"][1:]) == [
        "unstable (1/3 diverged)",
        "unstable (1/2 diverged)",
        "single seed",
        "unstable (3/3 diverged)",
    ]
    assert list(df["diverged"][1:]) == [1, 1, 0, 3]
    d = df.loc[1]  # the means cover the finite paired seeds 1 and 3, the delta too
    assert (d["seeds"], d["seed_list"]) == (2, "1,3")
    assert d["best_val_loss"] == pytest.approx(1.505)
    assert d["baseline_val_loss"] == pytest.approx(2.005)
    assert d["delta"] == pytest.approx(-0.5)
    assert df.loc[4, "seeds"] == 0 and math.isnan(df.loc[4, "best_val_loss"])


def test_a_variant_worse_on_its_finite_seeds_reads_worse_with_its_diverged_seeds_named():
    base = _base({s: 2.0 + 0.001 * (s % 3) for s in range(1, 7)})
    bad = Group("k", "w", [_diverged(10, 1)] + [
        _run(10 + s, 2.5 + 0.001 * (s % 3) + 0.0005 * s, seed=s) for s in range(2, 7)])  # fmt: skip
    df = build_table(base, [bad]).to_frame()
    assert df.loc[1, "verdict"] == "worse (1/6 diverged)" and df.loc[1, "delta_ci_low"] > 0


def test_a_diverged_baseline_seed_leaves_every_row_and_is_named():
    base = Group("k", "b", [_run(1, 2.0, seed=1), _diverged(2, 2), _run(3, 2.01, seed=3)], True)
    v = _variant("v", {1: 1.9, 2: 1.95, 3: 1.91})
    df = build_table(base, [v]).to_frame()
    assert (df.loc[0, "seeds"], df.loc[0, "diverged"]) == (2, 1)
    assert df.loc[1, "seed_list"] == "1,3" and "(baseline 1/3 diverged)" in df.loc[1, "verdict"]


def test_a_pruned_search_trial_stays_a_single_seed_candidate():
    from orchestrator.results.groups import SEARCH

    base = Group(SEARCH, "baseline", [_run(1, 2.0, seed=1)], True)
    pruned = Group(SEARCH, "trial-3: lr=0.1", [_run(
        5, None, "pruned", "FINISHED", 1, **{"sweep.pruned_step": "20"})])  # fmt: skip
    table = build_table(base, [pruned])
    row = table.variants[0]
    assert row.verdict is Verdict.SINGLE_SEED and row.label == "single seed (pruned at step 20)"
    assert row.diverged == 0


def test_a_reused_run_counts_like_the_run_it_links_to():
    base = _base({1: 2.0, 2: 2.02})
    linked = _run(9, 1.9, "reused", "FINISHED", 1, **{"sweep.reused_from_name": "other/seed=1"})
    row = build_table(base, [Group("k", "r", [linked, _run(10, 1.93, seed=2)])]).variants[0]
    assert (row.seeds, row.note) == (2, "reused from other/seed=1")
    assert row.delta == pytest.approx(((1.9 - 2.0) + (1.93 - 2.02)) / 2)


def test_a_seed_counts_once_and_a_bit_identical_variant_has_delta_zero():
    base = _base()
    # seed 1 recorded twice (named differently): the first recorded counts
    same = Group("k", "same", [_run(10 + s, x, seed=s) for s, x in BASE.items()] + [
        _run(20, 1.0, seed=1)])  # fmt: skip
    df = build_table(base, [same]).to_frame()
    assert df.loc[1, "seeds"] == 4 and df.loc[1, "delta"] == 0.0
    # four identical pairs: no spread, the one-row interval is exactly [0, 0]
    assert (df.loc[1, "delta_ci_low"], df.loc[1, "delta_ci_high"]) == (0.0, 0.0)
    assert df.loc[1, "verdict"] == "equivalent"


def test_the_header_and_the_legend_say_the_level_the_method_and_the_pooling():
    rows = [_variant(str(i), {s: x - 0.05 * i + 0.003 * (s % 2) for s, x in BASE.items()},
                     10 * i) for i in (1, 2, 3)]  # fmt: skip
    table = build_table(_base(), rows, Settings(alpha=0.05, margin=0.02))
    text = render(table, "table")
    assert "delta [95% simultaneous CI]" in text and "baseline_val_loss" in text
    legend = table.legend
    assert "98.33% per row (Bonferroni over the 3 rows)" in legend
    assert "Wang & Ramdas 2023" in legend and "±0.02 nats" in legend
    assert "Baseline seeds 1,2,3,4" in legend
    pooled = sum(r.pooled for r in table.variants)
    assert pooled and f"pooled (pairing `paired, pooled`) for {pooled} of 3 rows" in legend
    wide = build_table(_base(), rows, Settings(alpha=0.10, margin=0.05))
    assert "delta [90% simultaneous CI]" in render(wide, "md") and "±0.05 nats" in wide.legend
    assert "95%" not in render(wide, "html")
    # the machine-readable columns keep their names whatever the level
    header = next(csv.reader(io.StringIO(render(wide, "csv"))))
    assert {"delta_ci_low", "delta_ci_high", "baseline_val_loss", "pooled"} <= set(header)
    with pytest.raises(Exception, match="--margin must be a number >= 0"):
        Settings(margin=-0.1)


def test_a_separate_analysis_says_so_and_is_never_recorded():
    rows = [_variant("a", {s: x + 0.01 for s, x in BASE.items()})]
    table = build_table(_base(), rows, Settings(margin=0.05), recorded=Settings(margin=0.02))
    assert table.legend.startswith("SEPARATE ANALYSIS with margin 0.05, alpha 0.05: not this")
    assert "(margin 0.02, alpha 0.05, fixed at its first table" in table.legend
    assert "verdict (separate analysis)" in render(table, "table")
    with pytest.raises(ValueError, match="never recorded"):
        table.tags()
    recorded = build_table(_base(), rows)
    assert recorded.tags()["sweep.table_baseline_seeds"] == "1,2,3,4"
    assert "SEPARATE" not in recorded.legend
