"""The MLflow layout contract, end to end on a real SQLite store (smoke profile)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from envs import TINY, env_of, short_corpus

from orchestrator import tracking as T
from orchestrator.config import FIELDS, heads_for, recorded_config
from orchestrator.errors import NoBaselineError, UserError
from orchestrator.results.table import sweep_table
from orchestrator.sweeps.ablate import plan_ablation, run_ablation
from orchestrator.sweeps.baseline import record_baseline
from orchestrator.sweeps.knobs import KNOBS
from orchestrator.tracking import find_sweep

SUMMARY = {
    "best_val_loss",
    "best_val_ppl",
    "final_train_loss",
    "best_step",
    "wall_s",
    "params",
    "peak_mem_mb",
}


def history(tracker, run_id, key):
    return [(m.step, m.value) for m in tracker.client.get_metric_history(run_id, key)]


def test_baseline_run_follows_the_contract(tracker, baseline_run, corpus_path):
    run = baseline_run
    assert run.name == "baseline" and run.status == "FINISHED"
    assert run.tags[T.TAG_ROLE] == "baseline" and run.tags[T.TAG_STATE] == "complete"
    assert T.PARENT_TAG not in run.tags
    # every resolved config field is a param, plus the dataset identity
    assert set(FIELDS) <= set(run.params)
    assert run.params["max_steps"] == "30" and run.params["n_layer"] == "2"
    assert run.params["data"] == str(corpus_path)
    text = corpus_path.read_text(encoding="utf-8")
    assert int(run.params["dataset.characters"]) == len(text)
    assert int(run.params["dataset.vocab_size"]) == len(set(text))
    assert len(run.params["dataset.sha256"]) == 64
    # per-eval metrics, indexed by step
    for key in ("train_loss", "val_loss", "val_ppl", "lr", "tokens_per_s"):
        assert [s for s, _ in history(tracker, run.run_id, key)] == [10, 20, 30], key
    vals = history(tracker, run.run_id, "val_loss")
    ppl = history(tracker, run.run_id, "val_ppl")
    assert all(
        p == pytest.approx(math.exp(v), rel=1e-5) for (_, v), (_, p) in zip(vals, ppl, strict=True)
    )
    assert set(run.metrics) >= SUMMARY
    assert run.metrics["best_val_loss"] == pytest.approx(min(v for _, v in vals))
    assert run.metrics["best_step"] == next(s for s, v in vals if v == min(v for _, v in vals))
    # artifacts
    files = (
        set(tracker.list_artifacts(run.run_id))
        | set(tracker.list_artifacts(run.run_id, "samples"))
        | set(tracker.list_artifacts(run.run_id, "checkpoints"))
    )
    assert {
        "config.json",
        "samples/step-10.txt",
        "samples/step-30.txt",
        "checkpoints/best.pt",
    } <= files
    # the config can be read back from the run, never from a profile
    assert (
        recorded_config(run).to_flat()
        == json.loads(
            (tracker.download(run.run_id, "config.json", tracker.store_dir / "dl")).read_text()
        )["config"]
    )


def test_ablation_changes_only_the_knob_and_the_table_equals_the_metrics(tracker, baseline_run):
    result = run_ablation(env_of(tracker), "dropout", ["0.0", "0.2"])
    # smoke's dropout is 0.0: the baseline stands for it, only 0.2 is trained
    assert result.stand_ins == ["0.0"]
    assert [o.name for o in result.trained] == ["dropout=0.2"]
    parent = tracker.get_run(result.parent_id)
    assert parent.name == "ablate:dropout" and parent.status == "FINISHED"
    assert parent.tags[T.TAG_ROLE] == "ablation" and parent.tags[T.TAG_KNOB] == "dropout"
    assert parent.tags[T.TAG_BASELINE] == baseline_run.run_id
    (child,) = tracker.children(result.parent_id)
    assert child.tags[T.PARENT_TAG] == result.parent_id and child.status == "FINISHED"
    diff = {k for k in FIELDS if child.params[k] != baseline_run.params[k]}
    assert diff == {"dropout"}
    assert child.params["dropout"] == "0.2"
    assert child.params["dataset.sha256"] == baseline_run.params["dataset.sha256"]
    assert [s for s, _ in history(tracker, child.run_id, "val_loss")] == [10, 20, 30]
    assert "checkpoints/best.pt" in tracker.list_artifacts(child.run_id, "checkpoints")

    table = sweep_table(tracker, parent)
    df = table.to_frame()
    assert list(df["value"]) == ["0.0", "0.2"]
    assert list(df["verdict"]) == ["baseline", "single seed"]
    assert df.loc[0, "best_val_loss"] == baseline_run.metrics["best_val_loss"]
    assert df.loc[1, "best_val_loss"] == child.metrics["best_val_loss"]
    assert df.loc[1, "delta"] == pytest.approx(
        child.metrics["best_val_loss"] - baseline_run.metrics["best_val_loss"]
    )
    assert df.loc[1, "final_train_loss"] == child.metrics["final_train_loss"]
    # the table is attached to the parent and written next to the store
    assert {"table.csv", "table.md"} <= set(tracker.list_artifacts(result.parent_id))
    written = sorted((tracker.store_dir / "sweep-tables").iterdir())
    assert [p.suffix for p in written] == [".csv", ".md"]
    back = pd.read_csv(written[0])
    assert back.loc[1, "best_val_loss"] == pytest.approx(child.metrics["best_val_loss"], rel=1e-12)
    assert find_sweep(tracker, knob="dropout").run_id == result.parent_id


def test_rerunning_resumes_instead_of_retraining(tracker, baseline_run):
    first = run_ablation(env_of(tracker), "dropout", ["0.2"])
    again = run_ablation(env_of(tracker), "dropout", ["0.2", "0.1"])
    assert again.parent_id == first.parent_id
    assert again.skipped == ["dropout=0.2"]
    assert [o.name for o in again.trained] == ["dropout=0.1"]
    names = sorted(r.name for r in tracker.children(first.parent_id))
    assert names == ["dropout=0.1", "dropout=0.2"]


def test_seeded_baseline_gives_verdicts_with_p_values(tracker, smoke_cfg):
    result = record_baseline(env_of(tracker), smoke_cfg, seeds=2)
    parent = tracker.get_run(result.run_id)
    assert parent.tags["sweep.seeds"] == "2"
    kids = tracker.children(result.run_id)
    assert sorted(k.name for k in kids) == ["baseline/seed=1", "baseline/seed=2"]
    assert {k.tags[T.TAG_ROLE] for k in kids} == {"baseline-seed"}
    abl = run_ablation(env_of(tracker), "lr", ["0.003"])
    runs = tracker.children(abl.parent_id)
    assert sorted(r.name for r in runs) == ["lr=0.003/seed=1", "lr=0.003/seed=2"]
    table = sweep_table(tracker, tracker.get_run(abl.parent_id))
    df = table.to_frame()
    assert df.loc[1, "seeds"] == 2 and df.loc[0, "seeds"] == 2
    assert df.loc[1, "verdict"] in {"better", "worse", "equivalent", "inconclusive"}
    assert 0.0 <= df.loc[1, "p_value"] <= df.loc[1, "p_adjusted"] <= 1.0  # anytime, times K
    losses = sorted(r.metrics["best_val_loss"] for r in runs)
    assert df.loc[1, "best_val_loss"] == pytest.approx(sum(losses) / 2)


def test_a_diverging_value_fails_alone_and_the_sweep_goes_on(tracker, baseline_run):
    result = run_ablation(env_of(tracker), "lr", ["1e6", "0.002"])
    by_name = {r.name: r for r in tracker.children(result.parent_id)}
    bad, good = by_name["lr=1000000.0"], by_name["lr=0.002"]
    assert bad.status == "FAILED" and bad.tags[T.TAG_STATE] == "failed"
    assert "non-finite loss" in bad.tags[T.TAG_REASON]
    assert int(bad.tags[T.TAG_FAILED_STEP]) >= 1
    assert good.status == "FINISHED"
    assert tracker.get_run(result.parent_id).status == "FINISHED"
    table = sweep_table(tracker, tracker.get_run(result.parent_id))
    df = table.to_frame()
    row = df[df["value"] == "1000000.0"].iloc[0]
    # a diverged seed is counted, never dropped: the row says so
    assert row["verdict"] == "unstable (1/1 diverged)" and row["seeds"] == 0
    assert row["diverged"] == 1
    # and it is an observation, not a crash: a re-run does not train it again
    again = run_ablation(env_of(tracker), "lr", ["1e6", "0.002"])
    assert again.trained == [] and sorted(again.skipped) == ["lr=0.002", "lr=1000000.0"]


def test_bad_values_are_refused_before_anything_trains(tracker, baseline_run):
    before = len(tracker.search())
    with pytest.raises(UserError, match=r"--values dropout=1.5: dropout must be in \[0, 1\)"):
        run_ablation(env_of(tracker), "dropout", ["0.1", "1.5"])
    with pytest.raises(
        UserError,
        match=r"unknown knob 'droput' \(did you mean 'dropout'\?\); known knobs: dropout,",
    ):
        run_ablation(env_of(tracker), "droput", ["0.1"])
    with pytest.raises(UserError, match="n_layer must be an integer"):
        run_ablation(env_of(tracker), "n_layer", ["deep"])
    with pytest.raises(UserError, match="no run with id 'nope'"):
        run_ablation(env_of(tracker), "dropout", ["0.1"], baseline_id="nope")
    assert len(tracker.search()) == before


def test_no_baseline_yet(tracker):
    with pytest.raises(NoBaselineError, match="run `sweep baseline` first"):
        run_ablation(env_of(tracker), "dropout", ["0.1"])


def test_width_keeps_a_matching_head_count(smoke_cfg):
    assert heads_for(384, 4) == 4 and heads_for(100, 8) == 5 and heads_for(7, 4) == 1
    plans = plan_ablation(smoke_cfg, KNOBS["depth-width"], ["3x96", "2x66"], [1])
    assert [(p.cfg.gpt.n_layer, p.cfg.gpt.n_embed, p.cfg.gpt.n_head) for p in plans] == [
        (3, 96, 2),
        (2, 66, 2),
    ]
    plans = plan_ablation(smoke_cfg, KNOBS["n_embed"], ["75"], [1])
    assert plans[0].cfg.gpt.n_head == 1


def test_sample_files_list_in_step_order(tracker, corpus_path):
    """samples/step-N.txt are zero-padded to the last step: sorted by name = sorted by step
    (unpadded, step-10 and step-12 sorted before step-2 in the UI and list_artifacts)."""
    from orchestrator.config import build

    cfg = build("smoke", {"max_steps": "12", "eval_every": "2"}, data=str(corpus_path))
    result = record_baseline(env_of(tracker), cfg, seeds=1)
    assert result.ok
    names = tracker.list_artifacts(result.run_id, "samples")
    assert names == [f"samples/step-{s:02d}.txt" for s in (2, 4, 6, 8, 10, 12)]
    assert names == sorted(names)


def test_diverged_seeds_are_counted_and_a_single_seed_row_subtracts(
    tracker, store, tmp_path, corpus_path
):
    """Through the CLI: a learning rate that diverges on some seeds (non-finite loss) reads
    `unstable (k/n diverged)` or `worse`, never better; a one-seed row against a seeded
    baseline is compared with the baseline's same seed, and its columns subtract."""
    from typer.testing import CliRunner

    from orchestrator.cli import app
    from orchestrator.config import build

    corpus = short_corpus(corpus_path, tmp_path)
    tiny = {**TINY, "grad_clip": "0"}
    base = record_baseline(env_of(tracker), build("smoke", tiny, data=str(corpus)), seeds=3)
    uri = ["--tracking-uri", store]
    # no clipping, 12 steps: at lr 600 some seeds blow up to NaN (seed 1 on this CPU), at
    # lr 1000 all three
    r = CliRunner().invoke(app, ["ablate", "--knob", "lr", "--values", "600,1000", *uri])
    assert r.exit_code == 0, r.output
    parent = find_sweep(tracker, knob="lr")
    diverged = {}
    for run in tracker.children(parent.run_id):
        if run.tags.get(T.TAG_FAILED_STEP):
            diverged[run.tags[T.TAG_VALUE]] = diverged.get(run.tags[T.TAG_VALUE], 0) + 1
    df = sweep_table(tracker, parent).to_frame().set_index("value")
    assert diverged.get("1000.0") == 3 and 0 < diverged.get("600.0", 0) < 3
    for value, k in diverged.items():
        label = df.loc[value, "verdict"]
        assert label in (f"unstable ({k}/3 diverged)", f"worse ({k}/3 diverged)"), label
        assert df.loc[value, "diverged"] == k and df.loc[value, "seeds"] == 3 - k
        assert label in r.output
    # a one-seed row: against baseline seed 1 (not the baseline's mean), and it subtracts
    r = CliRunner().invoke(app, ["ablate", "--knob", "dropout", "--values", "0.1",
                                 "--seeds", "1", *uri])  # fmt: skip
    assert r.exit_code == 0, r.output
    seed1 = next(m for m in T.baseline_members(tracker, tracker.get_run(base.run_id))
                 if m.tags[T.TAG_SEED] == "1")  # fmt: skip
    row = sweep_table(tracker, find_sweep(tracker, knob="dropout")).to_frame().iloc[1]
    assert row["verdict"] == "single seed" and row["seed_list"] == "1"
    assert row["baseline_val_loss"] == seed1.metrics["best_val_loss"]
    assert row["best_val_loss"] - row["baseline_val_loss"] == pytest.approx(row["delta"], abs=1e-12)
    line = next(ln for ln in r.output.splitlines() if ln.startswith("dropout  0.1"))
    shown, base_shown, delta_shown = (float(x) for x in line.split()[3:6])
    assert abs(shown - base_shown - delta_shown) <= 1.5e-4  # printed to 4 decimals


def test_ablation_and_confirmation_runs_cannot_be_pruned(smoke_cfg):
    """A pruned seed cannot occur in an ablation or a confirmation: their specs carry no
    pruner (the runner ends a run PRUNED only on a spec's `stop_on`), so every seed of theirs
    finishes, diverges or is interrupted."""
    from orchestrator.sweeps.ablate import spec_of
    from orchestrator.sweeps.confirm import confirm_spec
    from orchestrator.tracking import RunInfo

    knob = KNOBS["dropout"]
    plans = plan_ablation(smoke_cfg, knob, ["0.1"], [1, 2])
    assert all(spec_of(knob, p).stop_on == () and not spec_of(knob, p).hooks for p in plans)
    trial = RunInfo("t", "trial-3", "FINISHED", {}, {}, {T.TAG_TRIAL: "3"}, 0, "")
    spec = confirm_spec(trial, smoke_cfg, 4)
    assert spec.stop_on == () and not spec.hooks and spec.name == "trial-3/seed=4"
