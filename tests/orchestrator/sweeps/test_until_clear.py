"""Verdicts people can act on, end to end with real runs and a real store: paired verdicts,
seed identity, seeds added until every row is decided, and settings fixed at a sweep's first
table."""

from __future__ import annotations

import io
import json

import pytest
from envs import TINY, ablation_of, env_of, short_corpus
from typer.testing import CliRunner

from orchestrator import tracking as T
from orchestrator.cli import app
from orchestrator.config import build
from orchestrator.errors import UserError
from orchestrator.progress import Progress
from orchestrator.results.table import sweep_table
from orchestrator.results.verdicts import DEFAULT_MARGIN, FINAL, Verdict
from orchestrator.sweeps.ablate import run_ablation
from orchestrator.sweeps.baseline import record_baseline


def _baseline(tracker, corpus_path, tmp_path, seeds):
    corpus = short_corpus(corpus_path, tmp_path)
    cfg = build("smoke", dict(TINY), data=str(corpus))
    result = record_baseline(env_of(tracker), cfg, seeds=seeds)
    assert result.ok
    return tracker.get_run(result.run_id)


@pytest.fixture
def tiny_baseline(tracker, corpus_path, tmp_path):
    """A two-seed baseline of ~1 s runs, recorded in the `store` the CLI is pointed at."""
    return _baseline(tracker, corpus_path, tmp_path, 2)


def _row(tracker, parent_id, value):
    df = sweep_table(tracker, tracker.get_run(parent_id)).to_frame()
    return df[df["value"] == value].iloc[0]


def _said(tracker):
    """An env whose progress lines can be read back, and the reader."""
    out = io.StringIO()
    return env_of(tracker, Progress(live=False, stream=out)), out.getvalue


def test_memory_only_change_is_equivalent_and_a_bit_identical_one_exactly_zero(
    tracker, corpus_path, tmp_path
):
    # one row alone, nothing to pool with: its own anytime interval needs four pairs
    _baseline(tracker, corpus_path, tmp_path, 4)
    acc = run_ablation(env_of(tracker), "grad_accum_steps", ["2"])
    row = _row(tracker, acc.parent_id, "2")
    assert row["seeds"] == 4 and row["pairing"] == "paired"
    assert -DEFAULT_MARGIN < row["delta_ci_low"] <= row["delta_ci_high"] < DEFAULT_MARGIN
    assert row["verdict"] == "equivalent"
    # amp=auto resolves to bf16 on a CPU with native bf16 and to fp32 elsewhere: the value
    # it resolves to trains bit for bit the same runs
    from model.train import cpu_has_native_bf16

    same = "bf16" if cpu_has_native_bf16() else "off"
    result = run_ablation(env_of(tracker), "amp", [same])
    row = _row(tracker, result.parent_id, same)
    assert row["delta"] == 0.0 and row["verdict"] == "equivalent"
    # its noise scale pooled with the earlier sweep's row (the history of this baseline)
    assert row["pairing"] == "paired, pooled"
    assert -1e-3 < row["delta_ci_low"] <= 0.0 <= row["delta_ci_high"] < 1e-3
    parent = tracker.get_run(result.parent_id)  # what the table was decided with
    assert float(parent.tags["sweep.margin"]) == DEFAULT_MARGIN
    assert float(parent.tags["sweep.alpha"]) == 0.05
    assert parent.tags[T.TAG_TABLE_SEEDS] == "1,2,3,4"
    assert parent.tags[T.TAG_HISTORY] == acc.parent_id


def test_a_seed_is_trained_and_counted_once_whatever_seeds_said(tracker, tiny_baseline):
    first = run_ablation(env_of(tracker), "dropout", ["0.1"], seeds=2)
    again = run_ablation(env_of(tracker), "dropout", ["0.1"], seeds=1)  # seed 1, named otherwise
    assert again.parent_id == first.parent_id and again.trained == []
    assert len(tracker.children(first.parent_id)) == 2
    row = _row(tracker, first.parent_id, "0.1")
    assert row["seeds"] == 2 and row["pairing"] == "paired" and row["seed_list"] == "1,2"


def test_until_clear_adds_seeds_until_every_row_is_decided(tracker, tiny_baseline):
    env, said = _said(tracker)
    # two learning rates far too small: clearly worse, decided long before the cap
    result = run_ablation(env, "lr", ["0.00001", "0.00002"], until_clear=True, max_seeds=8)
    table = sweep_table(tracker, tracker.get_run(result.parent_id))
    rows = table.variants
    assert all(r.verdict in FINAL for r in rows), [r.label for r in rows]
    assert [r.label for r in rows] == ["worse", "worse"]
    n = max(r.seeds for r in rows)
    assert 2 <= n < 8 and "every row is decided" in said()
    # the baseline gained exactly the seeds the rows needed, one at a time
    assert T.baseline_seeds(tracker.get_run(tiny_baseline.run_id)) == list(range(1, n + 1))
    assert "at most" in said()  # the estimate, said before the first added seed
    # nothing of a schedule is recorded
    assert T.TAG_SEQUENTIAL not in tracker.get_run(result.parent_id).tags


def test_until_clear_stops_at_the_cap_and_a_later_table_is_marked_stale(tracker, tiny_baseline):
    from orchestrator.results.listing import rows as list_rows

    plain = run_ablation(env_of(tracker), "lr", ["0.002"])  # a table on seeds 1, 2
    env, said = _said(tracker)
    result = run_ablation(env, "dropout", ["0.05"], until_clear=True, max_seeds=3)
    baseline = tracker.get_run(tiny_baseline.run_id)
    assert T.baseline_seeds(baseline) == [1, 2, 3]  # the baseline got seed 3 too
    assert len(T.baseline_members(tracker, baseline)) == 3
    row = _row(tracker, result.parent_id, "0.05")
    assert row["seeds"] == 3 and row["seed_list"] == "1,2,3"
    assert row["verdict"] == "inconclusive" and row["seeds_needed"] > 3
    assert "reached --max-seeds 3; still undecided: dropout=0.05" in said()
    # `sweep list`: the lr table used seeds 1, 2; the baseline has gained seed 3 since
    listed = {r["run_id"]: r["table"] for r in list_rows(tracker)}
    assert listed[plain.parent_id] == "seeds 1,2: stale, baseline +3"
    assert listed[result.parent_id] == "seeds 1,2,3"
    # no schedule was fixed: a later --max-seeds goes on from there
    more = run_ablation(env_of(tracker), "dropout", ["0.05"], until_clear=True, max_seeds=4)
    assert [o.name for o in more.trained] == ["baseline/seed=4", "dropout=0.05/seed=4"]


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
    with pytest.raises(UserError, match="leave out --seeds"):
        run_ablation(env_of(tracker), "dropout", ["0.1"], seeds=2, until_clear=True)
    assert len(tracker.search()) == before


def sweep(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error(result) -> str:
    """The one `error:` line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def _tags(tracker, knob, baseline):
    parent = ablation_of(tracker, knob, baseline.run_id)
    return float(parent.tags["sweep.margin"]), float(parent.tags["sweep.alpha"])


def test_settings_are_fixed_at_the_first_table(tracker, store, tiny_baseline):
    uri = ["--tracking-uri", store]
    drop = ["--knob", "dropout"]
    r = sweep("ablate", *drop, "--values", "0.1", "--margin", "0.05", *uri)
    assert r.exit_code == 0, r.output
    assert _tags(tracker, "dropout", tiny_baseline) == (0.05, 0.05)
    # another value, no --margin: the sweep keeps its 0.05
    r = sweep("ablate", *drop, "--values", "0.3", *uri)
    assert r.exit_code == 0, r.output
    assert "±0.05 nats" in r.output and "note:" not in r.output
    parent = ablation_of(tracker, "dropout", tiny_baseline.run_id)
    tags_before, before = dict(parent.tags), len(tracker.search())
    # a different value after the first table: refused, one line, nothing recorded
    for flags in (["--margin", "0.03"], ["--alpha", "0.1"], ["--until-clear", "--margin", "0.03"]):
        r = sweep("ablate", *drop, "--values", "0.3", *flags, *uri)
        assert (
            "decided its table with --" in one_error(r) and "fixed at its first table" in r.output
        )
    assert len(tracker.search()) == before
    assert tracker.get_run(parent.run_id).tags == tags_before
    # `sweep table --margin`: a separate analysis, labelled, never recorded
    r = sweep("table", *drop, "--margin", "0.5", *uri)
    assert r.exit_code == 0, r.output
    assert "verdict (separate analysis)" in r.output
    assert "SEPARATE ANALYSIS with margin 0.5, alpha 0.05" in r.output
    assert "(margin 0.05, alpha 0.05, fixed at its first table" in r.output
    assert tracker.get_run(parent.run_id).tags == tags_before
    # the same value repeated is no change
    r = sweep("ablate", *drop, "--values", "0.3", "--margin", "0.05", *uri)
    assert r.exit_code == 0, r.output


def test_a_margin_before_any_table_replaces_the_recorded_one(tracker, tiny_baseline):
    from orchestrator.results.settings import settings_for
    from orchestrator.tracking import Role

    # a sweep whose first command died before its table: nothing was decided yet
    run_id = tracker.create_run(
        "ablate:dropout",
        tags={T.TAG_ROLE: Role.ABLATION, T.TAG_KNOB: "dropout", T.TAG_MARGIN: "0.02"},
    )
    settings, notes = settings_for(tracker.get_run(run_id), margin=0.04)
    assert settings.margin == 0.04 and "replaces the 0.02" in notes[0]


def test_a_store_of_the_old_until_clear_is_read_and_resumed(tracker, store, tiny_baseline):
    result = run_ablation(env_of(tracker), "lr", ["0.00001"])
    # what the fixed-schedule --until-clear of earlier versions recorded
    old = '{"n0": 2, "max_seeds": 3, "values": ["1e-05"]}'
    tracker.set_tags(result.parent_id, {T.TAG_SEQUENTIAL: old})
    r = sweep("table", "--knob", "lr", "--tracking-uri", store)
    assert r.exit_code == 0, r.output
    assert "earlier fixed schedule (tag sweep.sequential)" in r.output
    r = sweep("ablate", "--knob", "lr", "--values", "0.00001", "--until-clear",
              "--max-seeds", "3", "--tracking-uri", store)  # fmt: skip
    assert r.exit_code == 0, r.output
    row = _row(tracker, result.parent_id, "1e-05")
    assert row["verdict"] in [v.value for v in FINAL] or row["seeds"] == 3
    assert tracker.get_run(result.parent_id).tags[T.TAG_SEQUENTIAL] == old  # never rewritten
    assert Verdict(row["verdict"].split(" (")[0])


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


def test_a_plain_ablation_names_the_command_that_settles_its_undecided_rows(
    tracker, store, tiny_baseline
):
    uri = ["--tracking-uri", store]
    # two seeds: a row alone cannot be decided yet (its interval needs four pairs)
    r = sweep("ablate", "--knob", "dropout", "--values", "0.0,0.05,0.1", *uri)
    assert r.exit_code == 0, r.output
    hint = (
        "2 value(s) undecided (0.05, 0.1); add seeds until each is decided: "
        "sweep ablate --knob dropout --values 0.05,0.1 --until-clear"
    )
    assert hint in r.output  # 0.0 is the baseline's own value: not undecided
    command = hint.split("decided: sweep ")[1].split()
    r = sweep(*command, "--max-seeds", "3", *uri)  # the command as printed (capped here)
    assert r.exit_code == 0, r.output
    assert "add seeds until each is decided" not in r.output  # --until-clear says its own
    parent = ablation_of(tracker, "dropout", tiny_baseline.run_id)
    assert parent.tags[T.TAG_TABLE_SEEDS] == "1,2,3"  # the same sweep, one seed further
    r = sweep("ablate", "--knob", "dropout", "--values", "0.1", "--format", "csv", *uri)
    assert r.exit_code == 0 and '"knob","value"' in r.output, r.output
    assert "undecided" not in r.output  # a machine-readable table is the table alone


def test_a_value_added_later_is_its_own_family_and_changes_no_decided_row(
    tracker, corpus_path, tmp_path
):
    """Bonferroni over the rows a table has *now* re-decided every earlier row at alpha/K
    when a value was added (the audit: lr=0.003 `better` at 95% became [-0.2716, -0.0811]
    at 97.5%, wider at both ends, and a decided row could turn inconclusive)."""
    base = _baseline(tracker, corpus_path, tmp_path, 4)  # four pairs: a finite interval alone
    first = run_ablation(env_of(tracker), "lr", ["0.003"])
    before = _row(tracker, first.parent_id, "0.003")
    later = run_ablation(env_of(tracker), "lr", ["0.03", "0.0003"])
    assert later.parent_id == first.parent_id
    table = sweep_table(tracker, tracker.get_run(first.parent_id))
    after = table.to_frame().set_index("value")
    for key in ("delta_ci_low", "delta_ci_high", "p_adjusted", "verdict", "seeds_needed"):
        assert after.loc["0.003", key] == before[key] or (
            after.loc["0.003", key] != after.loc["0.003", key] and before[key] != before[key]
        ), key  # equal, or both NaN
    # the two added together share alpha: each at alpha/2, their p_adj = min(1, 2/e)
    assert [sorted(f) for f in table.families] == [["0.003"], ["0.0003", "0.03"]]
    assert table.judged.families == [1, 2]
    assert "(1 row at 95%, 2 rows at 97.5%" in table.legend
    assert "every interval of a family holds" in table.legend
    recorded = json.loads(tracker.get_run(first.parent_id).tags[T.TAG_FAMILIES])
    assert recorded == table.families
    assert T.baseline_seeds(tracker.get_run(base.run_id)) == [1, 2, 3, 4]
