import math

import pytest

from orchestrator.compare import Group, build_table, render, verdict
from orchestrator.tracking import RunInfo


def test_verdict_clear_improvement_regression_and_noise():
    base = [1.50, 1.51, 1.49, 1.50]
    word, p = verdict(base, [1.40, 1.41, 1.39, 1.40])
    assert word == "better" and p < 0.001
    word, p = verdict(base, [1.60, 1.62, 1.61, 1.60])
    assert word == "worse" and p < 0.001
    word, p = verdict(base, [1.505, 1.49, 1.515, 1.50])
    assert word == "within noise" and p > 0.05


def test_verdict_needs_seeds_on_both_sides():
    assert verdict([1.5], [1.0])[0] == "single seed"
    assert math.isnan(verdict([1.5, 1.6], [1.0])[1])


def test_verdict_matches_welch_by_hand():
    a, b = [1.0, 1.2, 1.1], [0.9, 0.95, 1.0, 0.92]
    # Welch's t statistic and Satterthwaite degrees of freedom, computed by hand.
    import statistics

    from scipy import stats

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(b) - statistics.fmean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p_by_hand = 2 * stats.t.sf(abs(t), df)
    assert verdict(a, b)[1] == pytest.approx(p_by_hand, rel=1e-9)


def _run(i, loss, state="complete", status="FINISHED", **tags):
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
    return RunInfo(f"r{i}", f"run{i}", status, {}, metrics, {"sweep.state": state, **tags}, 0, "")


def test_table_numbers_deltas_and_failed_rows():
    base = Group("dropout", "0.1", [_run(0, 2.0), _run(1, 2.2)], is_baseline=True)
    better = Group("dropout", "0.0", [_run(2, 1.5), _run(3, 1.6)])
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
    df = build_table(base, [better, failed])
    assert list(df["value"]) == ["0.1", "0.0", "0.9"]
    assert df.loc[0, "verdict"] == "baseline"
    assert df.loc[1, "best_val_loss"] == pytest.approx(1.55)
    assert df.loc[1, "delta"] == pytest.approx(1.55 - 2.1)
    assert df.loc[1, "delta_pct"] == pytest.approx(100 * (1.55 - 2.1) / 2.1)
    assert df.loc[1, "train_val_gap"] == pytest.approx(0.11)
    assert df.loc[2, "verdict"].startswith("failed: non-finite loss (nan) at step 7")
    assert df.loc[2, "seeds"] == 0
    text = render(df, "table")
    assert "1.5500 ± 0.0707" in text and "-26.2%" in text
