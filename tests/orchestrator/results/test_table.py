import csv
import io
import math

import pytest
from scipy import special

from orchestrator.results.export import render
from orchestrator.results.settings import Settings
from orchestrator.results.table import Group, build_table
from orchestrator.tracking import RunInfo


def _run(i, loss, state="complete", status="FINISHED", seed=None, **tags):
    metrics = (
        {}
        if loss is None
        else {
            "best_val_loss": loss,
            "best_val_ppl": math.exp(loss),
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


def test_table_numbers_deltas_and_failed_rows():
    base = Group("dropout", "0.1", [_run(0, 2.0, seed=1), _run(1, 2.2, seed=2)], is_baseline=True)
    better = Group("dropout", "0.0", [_run(2, 1.5, seed=1), _run(3, 1.6, seed=2)])
    failed = Group(
        "dropout",
        "0.9",
        [
            _run(
                4,
                None,
                state="failed",
                status="FAILED",
                **{"sweep.reason": "non-finite loss (nan) at step 7"},
            )
        ],
    )
    table = build_table(base, [better, failed])
    df = table.to_frame()
    assert list(df["value"]) == ["0.1", "0.0", "0.9"]
    assert df.loc[0, "verdict"] == "baseline"
    assert df.loc[1, "best_val_loss"] == pytest.approx(1.55)
    assert df.loc[1, "delta"] == pytest.approx(1.55 - 2.1)
    assert df.loc[1, "delta_pct"] == pytest.approx(100 * (1.55 - 2.1) / 2.1)
    assert df.loc[1, "train_val_gap"] == pytest.approx(0.11)
    assert df.loc[2, "verdict"].startswith("failed: non-finite loss (nan) at step 7")
    assert df.loc[2, "seeds"] == 0
    text = render(table, "table")
    assert "1.5500 ± 0.0707" in text and "-26.2%" in text
    # paired over seeds 1 and 2: differences -0.5 and -0.6, mean -0.55, sd 0.0707, df 1
    t = 12.706204736174707  # t(0.975, 1)
    half = t * 0.07071067811865482 / math.sqrt(2)
    assert df.loc[1, "pairing"] == "paired"
    assert df.loc[1, "delta_ci_low"] == pytest.approx(-0.55 - half)
    assert df.loc[1, "delta_ci_high"] == pytest.approx(-0.55 + half)
    assert df.loc[1, "verdict"] == "inconclusive"  # two pairs: the interval still crosses 0
    assert df.loc[1, "seeds_needed"] >= 3
    assert f"-0.5500 [{-0.55 - half:+.4f}, {-0.55 + half:+.4f}]" in text


def test_a_seed_counts_once_and_deltas_use_the_seeds_both_sides_have():
    base = Group("amp", "auto", [_run(i, 2.0 + i / 100, seed=i) for i in (1, 2, 3)], True)
    # seed 1 recorded twice (a run named dropout=0.1 and one named dropout=0.1/seed=1), and
    # only seeds 1-2 of the baseline's three: the same numbers as the baseline's seeds
    same = Group(
        "amp", "off", [_run(10, 2.01, seed=1), _run(11, 2.01, seed=1), _run(12, 2.02, seed=2)]
    )
    table = build_table(base, [same])
    df = table.to_frame()
    assert df.loc[1, "seeds"] == 2
    assert df.loc[1, "delta"] == 0.0  # exactly: bit-identical seeds, not mean(1,2) - mean(1,2,3)
    assert (df.loc[1, "delta_ci_low"], df.loc[1, "delta_ci_high"]) == (0.0, 0.0)
    assert df.loc[1, "verdict"] == "equivalent" and df.loc[1, "p_value"] == 1.0


def test_holm_across_the_rows_and_the_recorded_margin():
    base = Group("k", "b", [_run(i, 2.0 + 0.01 * (i % 2), seed=i) for i in range(1, 6)], True)
    shifted = [
        Group(
            "k",
            str(d),
            [
                _run(10 * j + i, 2.0 + 0.01 * (i % 2) + d + 0.002 * (i % 3), seed=i)
                for i in range(1, 6)
            ],
        )
        for j, d in enumerate((0.03, -0.03, 0.005), start=1)
    ]
    table = build_table(base, shifted, Settings(alpha=0.05, margin=0.02))
    df = table.to_frame()
    assert list(df["verdict"][1:]) == ["worse", "better", "equivalent"]
    from orchestrator.results.verdicts import holm

    assert list(df["p_adjusted"][1:]) == pytest.approx(holm(list(df["p_value"][1:])))
    wide_table = build_table(
        base, shifted, Settings(margin=0.05)
    )  # a wider margin: all three inside
    wide = wide_table.to_frame()
    assert list(wide["verdict"][1:]) == ["equivalent"] * 3
    assert "±0.05 nats" in wide_table.legend and "p < 0.05" in wide_table.legend
    with pytest.raises(Exception, match="--margin must be a number >= 0"):
        Settings(margin=-0.1)


def test_the_header_and_the_sentence_name_the_interval_level_used():
    base = Group("k", "b", [_run(i, 2.0 + 0.01 * i, seed=i) for i in (1, 2, 3)], True)
    var = Group("k", "v", [_run(10 + i, 1.95 + 0.013 * i, seed=i) for i in (1, 2, 3)])
    at_5_table = build_table(base, [var], Settings(alpha=0.05))
    at_5 = at_5_table.to_frame()
    at_10_table = build_table(base, [var], Settings(alpha=0.10))
    at_10 = at_10_table.to_frame()
    assert "delta [95% CI]" in render(at_5_table, "table") and "95%" not in render(
        at_10_table, "md"
    )
    assert "delta [90% CI]" in render(at_10_table, "md") and "delta [90% CI]" in render(
        at_10_table, "html"
    )
    # the 90% interval is the narrower one, at t(0.95, 2) instead of t(0.975, 2)
    lo5, hi5 = at_5.loc[1, ["delta_ci_low", "delta_ci_high"]]
    lo10, hi10 = at_10.loc[1, ["delta_ci_low", "delta_ci_high"]]
    assert (hi10 - lo10) / (hi5 - lo5) == pytest.approx(2.919985580355516 / 4.302652729911275)
    assert "the 90% interval" in at_10_table.legend and "95%" not in at_10_table.legend
    # the machine-readable columns keep their names whatever the level
    header = next(csv.reader(io.StringIO(render(at_10_table, "csv"))))
    assert {"delta_ci_low", "delta_ci_high"} <= set(header)


def test_the_sentence_counts_only_the_rows_holm_adjusts():
    base = Group("k", "b", [_run(i, 2.0 + 0.01 * i, seed=i) for i in (1, 2)], True)
    paired = Group("k", "p", [_run(10 + i, 1.9 + 0.012 * i, seed=i) for i in (1, 2)])
    single = Group("k", "s", [_run(20, 1.8, seed=1)])
    failed = Group("k", "f", [_run(30, None, state="failed", status="FAILED")])
    table = build_table(base, [paired, single, failed])
    df = table.to_frame()
    assert list(df["verdict"][2:]) == ["single seed", "failed"]
    assert "across the 1 row(s) with a p-value" in table.legend
    assert df.loc[1, "p_adjusted"] == df.loc[1, "p_value"]  # Holm over that one row


def test_only_the_values_seeds_were_added_to_replay_the_looks():
    from orchestrator.results.verdicts import sequential_level

    base = Group("k", "b", [_run(i, 2.0 + 0.01 * i, seed=i) for i in (1, 2, 3)], True)
    # decided at look 1 (two seeds): far better, tight
    clear = Group("k", "a", [_run(10 + i, 1.7 + 0.011 * i, seed=i) for i in (1, 2)])
    # added later by a plain `sweep ablate`, with seeds 2 and 3 only: no seed 1 of look 1
    later = Group("k", "z", [_run(20 + i, 2.05 + 0.02 * i, seed=i) for i in (2, 3)])
    seq = Settings(sequential=(2, 3), covers=("a",))
    alone_table = build_table(base, [clear], seq)
    alone = alone_table.to_frame()
    both_table = build_table(base, [clear, later], seq)
    both = both_table.to_frame()
    look1 = sequential_level(1, 2, 0.05)
    row = both.loc[1]
    assert row["verdict"] == "better"
    assert (row["p_adjusted"], row["delta_ci_low"], row["delta_ci_high"]) == tuple(
        alone.loc[1, ["p_adjusted", "delta_ci_low", "delta_ci_high"]]
    )  # the later value changes nothing of the replay (nor Holm's count there)
    assert row["delta_ci_high"] - row["delta"] == pytest.approx(
        # at the look's level: t(1 - alpha_1/2, df 1) · se; the differences -0.299 and
        # -0.298 of look 1's two seeds: sd = 0.001/sqrt(2), se = sd/sqrt(2) = 0.0005
        special.stdtrit(1, 1 - look1 / 2) * 0.0005
    )
    fixed_table = build_table(base, [later])  # the later value: judged at fixed n, at alpha
    fixed = fixed_table.to_frame()
    assert tuple(both.loc[2, ["verdict", "p_adjusted", "delta_ci_low"]]) == tuple(
        fixed.loc[1, ["verdict", "p_adjusted", "delta_ci_low"]]
    )
    text = both_table.legend
    assert "Seeds were added until clear for k=a" in text and "k=z joined without" in text
    assert "adjusted level" in text and "across the 1 row(s) with a p-value" in text
    assert "delta [CI at each row's level, below]" in render(both_table, "table")
    assert "delta [96.9% CI]" in render(alone_table, "table")  # one level (1 - alpha_1): named
