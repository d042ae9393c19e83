"""Verdicts people can act on, end to end on the smoke profile with real runs and a real store:
paired verdicts, seed identity, and seeds added until the answer is clear."""

from __future__ import annotations

import pytest
from envs import ablation_of, env_of
from typer.testing import CliRunner

from orchestrator import tracking as T
from orchestrator.cli import app
from orchestrator.config import build
from orchestrator.errors import UserError
from orchestrator.results.settings import TAG_SEQUENTIAL, Settings
from orchestrator.results.table import sweep_table
from orchestrator.results.verdicts import DEFAULT_MARGIN
from orchestrator.sweeps.ablate import run_ablation
from orchestrator.sweeps.baseline import record_baseline


@pytest.fixture
def three_seeds(tracker, smoke_cfg):
    result = record_baseline(env_of(tracker), smoke_cfg, seeds=3)
    assert result.ok
    return tracker.get_run(result.run_id)


def _row(tracker, parent_id, value):
    table = sweep_table(tracker, tracker.get_run(parent_id))
    df = table.to_frame()
    return df[df["value"] == value].iloc[0]


def test_memory_only_change_is_equivalent_and_a_tiny_lr_is_worse(tracker, three_seeds):
    # dropout is 0 in the smoke profile: accumulation over 2 micro-batches changes memory only
    acc = run_ablation(env_of(tracker), "grad_accum_steps", ["2"])
    row = _row(tracker, acc.parent_id, "2")
    assert row["seeds"] == 3 and row["pairing"] == "paired"
    assert -DEFAULT_MARGIN < row["delta_ci_low"] <= row["delta_ci_high"] < DEFAULT_MARGIN
    assert row["verdict"] == "equivalent"
    slow = run_ablation(env_of(tracker), "lr", ["0.00001"])
    row = _row(tracker, slow.parent_id, "1e-05")
    assert row["verdict"] == "worse" and row["delta_ci_low"] > 0 and row["p_adjusted"] < 0.05
    parent = tracker.get_run(slow.parent_id)  # margin and alpha recorded with the sweep
    assert float(parent.tags["sweep.margin"]) == DEFAULT_MARGIN
    assert float(parent.tags["sweep.alpha"]) == 0.05


def test_a_seed_is_trained_and_counted_once_whatever_seeds_said(tracker, smoke_cfg):
    record_baseline(env_of(tracker), smoke_cfg, seeds=2)
    first = run_ablation(env_of(tracker), "dropout", ["0.1"], seeds=2)
    again = run_ablation(
        env_of(tracker), "dropout", ["0.1"], seeds=1
    )  # seed 1 again, named differently
    assert again.parent_id == first.parent_id and again.trained == []
    assert len(tracker.children(first.parent_id)) == 2
    row = _row(tracker, first.parent_id, "0.1")
    assert row["seeds"] == 2 and row["pairing"] == "paired"


def test_a_bit_identical_variant_shows_a_delta_of_exactly_zero(tracker, three_seeds):
    # the smoke profile's amp=auto trains in bf16 on a CPU with native bf16 (this CI's
    # avx512_bf16 EPYC) and in fp32 elsewhere: the value it resolves to is bit-identical
    from model.train import cpu_has_native_bf16

    same = "bf16" if cpu_has_native_bf16() else "off"
    result = run_ablation(env_of(tracker), "amp", [same], seeds=2)
    row = _row(tracker, result.parent_id, same)
    assert row["seeds"] == 2  # compared on the baseline's seeds 1 and 2 only
    assert row["delta"] == 0.0 and row["delta_ci_low"] == 0.0 and row["delta_ci_high"] == 0.0
    assert row["verdict"] == "equivalent"


def test_until_clear_adds_seeds_to_both_sides_and_stops_at_the_cap(tracker, smoke_cfg):
    base = record_baseline(env_of(tracker), smoke_cfg, seeds=2)
    # a value far off stops at the first look; a small change stays open until --max-seeds
    result = run_ablation(env_of(tracker), "dropout", ["0.05"], until_clear=True, max_seeds=3)
    baseline = tracker.get_run(base.run_id)
    assert T.baseline_seeds(baseline) == [1, 2, 3]  # the baseline got seed 3 too
    assert len(T.baseline_members(tracker, baseline)) == 3
    row = _row(tracker, result.parent_id, "0.05")
    assert row["seeds"] == 3 and row["pairing"] == "paired"
    parent = tracker.get_run(result.parent_id)
    assert Settings.recorded(parent).sequential == (2, 3)
    # a small change: still open after the last look, at the cap, with what would settle it
    assert result.looks == 2 and row["verdict"] == "inconclusive"
    assert row["seeds_needed"] > 3
    assert parent.tags[TAG_SEQUENTIAL] == '{"n0": 2, "max_seeds": 3, "values": ["0.05"]}'
    slow = run_ablation(env_of(tracker), "lr", ["0.00001"], until_clear=True, max_seeds=3)
    row = _row(tracker, slow.parent_id, "1e-05")
    assert row["verdict"] == "worse" and row["seeds"] == 3  # the baseline's 3 seeds, paired
    assert slow.looks == 1  # decided at its first look: no seed added for it


def test_until_clear_bad_input_records_nothing(tracker, smoke_cfg):
    record_baseline(env_of(tracker), smoke_cfg, seeds=1)
    before = len(tracker.search())
    with pytest.raises(UserError, match="needs a baseline with 2 or more seeds"):
        run_ablation(env_of(tracker), "dropout", ["0.1"], until_clear=True)
    assert len(tracker.search()) == before
    record_baseline(env_of(tracker), smoke_cfg, seeds=3)
    before += 4  # the second baseline: a parent and its three seeds
    assert len(tracker.search()) == before
    with pytest.raises(UserError, match="--max-seeds 2 is below the 3 seeds"):
        run_ablation(env_of(tracker), "dropout", ["0.1"], until_clear=True, max_seeds=2)
    with pytest.raises(UserError, match="--max-seeds goes with --until-clear"):
        run_ablation(env_of(tracker), "dropout", ["0.1"], max_seeds=5)
    assert len(tracker.search()) == before


# Smoke, made smaller still (~1 s a run): what the CLI tests below train.
TINY = {"max_steps": "12", "eval_every": "4", "eval_iters": "2", "batch_size": "8",
        "block_size": "16", "n_embed": "32", "max_new_tokens": "16"}  # fmt: skip


def sweep(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error(result) -> str:
    """The one `error:` line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def tiny_baseline(tracker, corpus_path, tmp_path):
    """A two-seed baseline of ~1 s runs, recorded in the `store` the CLI is pointed at."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_path.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    result = record_baseline(env_of(tracker), build("smoke", dict(TINY), data=str(corpus)), seeds=2)
    assert result.ok
    return tracker.get_run(result.run_id)


def _tags(tracker, knob, baseline):
    parent = ablation_of(tracker, knob, baseline.run_id)
    return float(parent.tags["sweep.margin"]), float(parent.tags["sweep.alpha"])


def test_a_recorded_margin_and_alpha_are_kept_when_left_out(tracker, store, tiny_baseline):
    uri = ["--tracking-uri", store]
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--margin", "0.05", *uri)
    assert r.exit_code == 0, r.output
    assert _tags(tracker, "dropout", tiny_baseline) == (0.05, 0.05)
    # another value, no --margin: the sweep keeps its 0.05 (it was reset to 0.02)
    r = sweep("ablate", "--knob", "dropout", "--values", "0.3", *uri)
    assert r.exit_code == 0, r.output
    assert _tags(tracker, "dropout", tiny_baseline) == (0.05, 0.05)
    assert "±0.05 nats" in r.output and "note:" not in r.output
    # a plain ablation may change it when asked, and says so
    r = sweep("ablate", "--knob", "dropout", "--values", "0.3", "--margin", "0.03", *uri)
    assert r.exit_code == 0, r.output
    assert "note: --margin 0.03 replaces the 0.05 recorded with ablate:dropout" in r.output
    assert _tags(tracker, "dropout", tiny_baseline) == (0.03, 0.05)
    assert "±0.03 nats" in sweep("table", "--knob", "dropout", *uri).output


def test_an_until_clear_sweep_refuses_another_margin_or_alpha(tracker, store, tiny_baseline):
    uri = ["--tracking-uri", store]
    lr = ["--knob", "lr", "--values", "0.00001"]
    r = sweep("ablate", *lr, "--until-clear", "--max-seeds", "3", "--margin", "0.05",
              "--alpha", "0.1", *uri)  # fmt: skip
    assert r.exit_code == 0, r.output
    row = _row(tracker, ablation_of(tracker, "lr", tiny_baseline.run_id).run_id, "1e-05")
    before = len(tracker.search())
    for flags, message in (
        (["--margin", "0.03"], "added seeds until clear with --margin 0.05: its looks cannot"),
        (["--alpha", "0.05"], "added seeds until clear with --alpha 0.1: its looks cannot"),
        (["--values", "0.01", "--until-clear"], "0.01 cannot join its looks now"),
    ):
        r = sweep("ablate", *lr[:2], *(flags if "--values" in flags else [*lr[2:], *flags]), *uri)
        assert message in one_error(r), r.output
    assert len(tracker.search()) == before  # nothing recorded
    assert _tags(tracker, "lr", tiny_baseline) == (0.05, 0.1)
    # left out: the recorded values, on a resume of the looks as on a plain re-run
    for extra in (["--until-clear"], []):
        r = sweep("ablate", *lr, *extra, *uri)
        assert r.exit_code == 0, r.output
    assert len(tracker.search()) == before and _tags(tracker, "lr", tiny_baseline) == (0.05, 0.1)
    # a value added later by a plain ablation (one seed) leaves the replayed row as it was
    r = sweep("ablate", "--knob", "lr", "--values", "0.01", "--seeds", "1", *uri)
    assert r.exit_code == 0, r.output
    parent = ablation_of(tracker, "lr", tiny_baseline.run_id)
    again = _row(tracker, parent.run_id, "1e-05")
    cols = ["verdict", "seeds", "delta", "delta_ci_low", "delta_ci_high", "p_adjusted"]
    assert again[cols].tolist() == row[cols].tolist()
    assert "lr=0.01 joined without --until-clear" in sweep("table", "--knob", "lr", *uri).output


def test_a_bad_margin_is_one_line_and_records_nothing(tracker, store, tiny_baseline):
    before = len(tracker.search())
    for command in (["ablate", "--knob", "dropout", "--values", "0.1"], ["table"], ["report"]):
        for bad, message in (
            ("abc", "Invalid value for '--margin'"),
            ("-0.01", "--margin must be a number >= 0 (val-loss nats), got -0.01"),
            ("nan", "--margin must be a number >= 0 (val-loss nats), got nan"),
        ):
            r = sweep(*command, "--margin", bad, "--tracking-uri", store)
            assert message in one_error(r), (command, bad, r.output)
    assert len(tracker.search()) == before
    assert ablation_of(tracker, "dropout", tiny_baseline.run_id) is None
