"""`sweep search` on the embedded journal storage, against a real MLflow SQLite store.

One tiny baseline is recorded per module; each test runs its own study (own name, own
MLflow parent run) in that store, so trials take about a second each.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from orchestrator import tracking as T
from orchestrator.baseline import baseline_config, record_baseline
from orchestrator.errors import UserError
from orchestrator.search import (
    ATTR_RUN,
    ATTR_SURPLUS,
    anchored,
    baseline_command,
    load_space,
    parse_space,
    run_search,
    trial_config,
)
from orchestrator.tracking import Tracker

# Smoke, made smaller still: 12 steps, an eval every 4.
TINY = {
    "max_steps": "12",
    "eval_every": "4",
    "eval_iters": "2",
    "batch_size": "8",
    "block_size": "16",
    "n_embed": "32",
    "max_new_tokens": "16",
}
EVAL_STEPS = [4, 8, 12]
SUMMARY = {
    "best_val_loss",
    "best_val_ppl",
    "final_train_loss",
    "best_step",
    "wall_s",
    "params",
    "peak_mem_mb",
}
SPACE = """
[dropout]
low = 0.0
high = 0.3

[lr]
low = 3e-4
high = 3e-3
log = true
"""


@pytest.fixture(scope="module")
def search_env(tmp_path_factory, corpus_path):
    """(tracker, baseline run, space path) in a temp store shared by this module's tests."""
    from orchestrator.config import build

    root = tmp_path_factory.mktemp("search")
    corpus = root / "corpus.txt"
    corpus.write_text(corpus_path.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "char-gpt")
    result = record_baseline(tracker, build("smoke", dict(TINY), data=str(corpus)))
    assert result.ok
    space = root / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    return tracker, tracker.get_run(result.run_id), space


def study_of(tracker, name):
    from orchestrator.search import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(None, tracker))


def history(tracker, run_id, key):
    return [m.step for m in tracker.client.get_metric_history(run_id, key)]


def test_search_logs_one_run_per_trial_starts_from_the_baseline_and_resumes(search_env):
    tracker, baseline, space = search_env
    res = run_search(
        tracker, trials=4, space=str(space), pruner="none", seed=0, study_name="four", plots=True
    )
    study = study_of(tracker, "four")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # trial 0 is the baseline's own values
    base = baseline_config(baseline)
    assert trials[0].params == {"dropout": base.gpt.dropout, "lr": base.train.lr}

    parent = tracker.get_run(res.parent_id)
    assert parent.name == "search:four" and parent.status == "FINISHED"
    assert parent.tags[T.TAG_ROLE] == "search" and parent.tags[T.TAG_BASELINE] == baseline.run_id
    children = tracker.children(res.parent_id)
    assert sorted(r.name for r in children) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    for run in children:
        t = trials[int(run.tags[T.TAG_TRIAL])]
        assert run.status == "FINISHED" and run.state == "complete"
        assert run.tags[T.TAG_ROLE] == "search-trial" and t.user_attrs[ATTR_RUN] == run.run_id
        assert history(tracker, run.run_id, "val_loss") == EVAL_STEPS
        assert set(run.metrics) >= SUMMARY
        assert run.metrics["best_val_loss"] == pytest.approx(t.value)
        # only the searched keys differ from the baseline
        cfg = trial_config(base, t.params).to_flat()
        assert {k: v for k, v in run.params.items() if k in cfg and k not in ("data",)} == {
            k: str(v) for k, v in cfg.items() if k != "data"
        }
        assert "checkpoints/best.pt" in tracker.list_artifacts(run.run_id, "checkpoints")
    # the table: the baseline row, then one row per trial
    assert len(res.table) == 5 and res.table["verdict"].iloc[0] == "baseline"
    assert res.table["value"].iloc[1].startswith("trial-0: dropout=")
    assert res.best is not None and res.best["command"].startswith("sweep baseline --profile smoke")
    assert {p.name for p in res.plots} == {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
    }
    assert {"plots/optimization_history.png"} <= set(tracker.list_artifacts(res.parent_id, "plots"))
    assert {"table.csv", "table.md"} <= set(tracker.list_artifacts(res.parent_id))
    # `sweep plot` finds the study through the storage recorded on the parent run
    from orchestrator.plots import plot_sweep

    assert parent.tags["sweep.storage"] == str(tracker.store_dir / "optuna-journal.log")
    shown = plot_sweep(tracker, parent, tracker.store_dir / "plot-check", attach=False)
    assert {"optimization_history.png", "val-loss.png", "delta-best-val-loss.png"} <= {
        p.name for p in shown.paths
    }

    # the same study again with --trials 6: exactly two more
    res6 = run_search(
        tracker, trials=6, space=str(space), pruner="none", seed=0, study_name="four", plots=False
    )
    assert res6.parent_id == res.parent_id
    assert [t.number for t in study_of(tracker, "four").get_trials()] == [0, 1, 2, 3, 4, 5]
    assert len(tracker.children(res.parent_id)) == 6 and len(res6.table) == 7
    assert tracker.get_run(res.parent_id).status == "FINISHED"
    # and with --trials 6 once more: nothing to do
    run_search(tracker, trials=6, space=str(space), pruner="none", study_name="four", plots=False)
    assert len(study_of(tracker, "four").get_trials()) == 6


class PruneAfterTrialZero(optuna.pruners.BasePruner):
    """Prunes every trial but the first at its first report."""

    def prune(self, study, trial) -> bool:
        return trial.number > 0


def test_a_pruned_trial_is_pruned_in_optuna_and_tagged_in_mlflow(search_env):
    tracker, _, space = search_env
    res = run_search(
        tracker,
        trials=3,
        space=str(space),
        pruner=PruneAfterTrialZero(),
        study_name="pruned",
        plots=False,
    )
    trials = study_of(tracker, "pruned").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    for t in trials[1:]:
        run = tracker.get_run(t.user_attrs[ATTR_RUN])
        assert run.status == "FINISHED" and run.state == "pruned"
        assert "pruned at step 4" in run.tags[T.TAG_REASON]
        assert history(tracker, run.run_id, "val_loss") == [4]
        assert t.intermediate_values == {
            4: pytest.approx(tracker.client.get_metric_history(run.run_id, "val_loss")[0].value)
        }
    assert res.counts["pruned"] == 2 and res.counts["complete"] == 1
    assert list(res.table["state"]) == ["complete", "complete", "pruned", "pruned"]


def test_a_trial_with_the_same_params_is_not_trained_again(search_env):
    tracker, _baseline, tmp_space = search_env
    space = tmp_space.with_name("one-point.toml")
    space.write_text(
        "[dropout]\nvalues = [0.0]\n[schedule]\nchoices = ['constant']\n", encoding="utf-8"
    )
    run_search(tracker, trials=2, space=str(space), sampler="grid", study_name="dup", plots=False)
    # the grid has one point (the baseline's): the study stops at one trial
    assert len(study_of(tracker, "dup").get_trials()) == 1
    run_search(tracker, trials=2, space=str(space), sampler="random", study_name="dup", plots=False)
    t0, t1 = study_of(tracker, "dup").get_trials()
    assert t1.state == TrialState.COMPLETE and t1.value == t0.value and t1.params == t0.params
    assert t1.user_attrs["sweep.duplicate_of"] == 0
    run = tracker.get_run(t1.user_attrs[ATTR_RUN])
    assert (
        run.status == "FINISHED" and run.state == "duplicate" and "best_val_loss" not in run.metrics
    )
    assert "not trained again" in run.tags[T.TAG_REASON]


def test_a_diverging_trial_fails_alone_and_the_study_goes_on(search_env):
    tracker, _baseline, tmp_space = search_env
    space = tmp_space.with_name("diverge.toml")
    # lr 1e6 with no clipping blows up within a few steps; the grid visits it after trial 0
    space.write_text("[lr]\nvalues = [0.001, 1e6]\n[grad_clip]\nvalues = [0.0]\n", encoding="utf-8")
    res = run_search(
        tracker, trials=2, space=str(space), sampler="grid", study_name="diverge", plots=False
    )
    trials = study_of(tracker, "diverge").get_trials()
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL"]
    bad = next(t for t in trials if t.state == TrialState.FAIL)
    assert bad.params["lr"] == 1e6 and "non-finite loss" in bad.user_attrs["sweep.fail_reason"]
    run = tracker.get_run(bad.user_attrs[ATTR_RUN])
    assert (
        run.status == "FAILED"
        and run.state == "failed"
        and "non-finite loss" in run.tags[T.TAG_REASON]
    )
    assert tracker.get_run(res.parent_id).status == "FINISHED"
    assert res.counts["fail"] == 1 and res.counts["complete"] == 1
    row = res.table[res.table["state"] == "failed"].iloc[0]
    assert row["verdict"].startswith("failed: non-finite loss") and row["seeds"] == 0


def test_two_local_workers_share_the_journal_storage(search_env):
    tracker, _, space = search_env
    res = run_search(
        tracker,
        trials=4,
        space=str(space),
        pruner="none",
        workers=2,
        seed=3,
        study_name="workers",
        plots=False,
    )
    trials = [
        t for t in study_of(tracker, "workers").get_trials() if not t.user_attrs.get(ATTR_SURPLUS)
    ]
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert all(t.state == TrialState.COMPLETE for t in trials)
    children = tracker.children(res.parent_id)
    assert sorted(int(r.tags[T.TAG_TRIAL]) for r in children) == sorted(t.number for t in trials)
    assert all(r.status == "FINISHED" for r in children)
    assert {r.tags[T.TAG_PID] for r in children} - {str(__import__("os").getpid())}, (
        "trained in the workers"
    )
    assert tracker.get_run(res.parent_id).status == "FINISHED"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dropuot]\nlow = 0.0\nhigh = 0.2\n", "unknown key 'dropuot' (did you mean 'dropout'?)"),
        (
            "[dropout]\nlow = 0.3\nhigh = 0.3\n",
            "dropout: empty range: low (0.3) must be below high (0.3)",
        ),
        ("[n_layer]\nchoices = []\n", "n_layer: empty choices"),
        ("[lr]\nlow = 0.0\nhigh = 0.1\nlog = true\n", "lr: a log range needs low > 0"),
        (
            "[schedule]\nchoices = ['constant', 'linear']\n",
            "schedule=linear: schedule must be one of constant, cosine",
        ),
    ],
)
def test_a_bad_space_is_refused_before_anything_trains(search_env, tmp_path, text, message):
    tracker, _, _ = search_env
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    before = len(tracker.search(""))
    with pytest.raises(
        UserError,
        match="^space .*" + message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?"),
    ):
        run_search(tracker, trials=2, space=str(path), study_name="bad")
    assert len(tracker.search("")) == before


def test_default_space_and_grid_refusal(search_env):
    tracker, baseline, space = search_env
    default = load_space("default")
    assert default.names == ["dropout", "n_embed", "n_layer", "schedule", "warmup_steps", "lr"]
    base = baseline_config(baseline)
    wide = anchored(default, base)
    n_embed = next(p for p in wide.params if p.name == "n_embed")
    assert base.gpt.n_embed in n_embed.choices  # the baseline's width is a choice: trial 0
    for width in n_embed.choices:
        cfg = trial_config(base, {"n_embed": width})
        assert cfg.gpt.n_embed % cfg.gpt.n_head == 0
    with pytest.raises(UserError, match="--sampler grid needs a list for every key.*dropout, lr"):
        run_search(tracker, trials=2, space=str(space), sampler="grid", study_name="grid")
    with pytest.raises(UserError, match="unknown key"):
        parse_space("x", {"bogus": {"low": 1, "high": 2}})
    cmd = baseline_command(trial_config(base, {"dropout": 0.25}))
    assert cmd.startswith("sweep baseline --profile smoke ") and "--set dropout=0.25" in cmd


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--sampler", "bayes"],
            "unknown sampler 'bayes'; choose one of: tpe, random, cmaes, grid",
        ),
        (["--pruner", "asha"], "unknown pruner 'asha'; choose one of: hyperband, median, none"),
        (["--trials", "0"], "--trials must be at least 1 (got 0)"),
        (["--workers", "0"], "--workers must be at least 1 (got 0)"),
        (["--space", "nope"], "unknown space 'nope'; known: default, small"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(search_env, args, message):
    from orchestrator.cli import app

    tracker, _, _ = search_env
    result = CliRunner().invoke(app, ["search", "--tracking-uri", tracker.uri, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_on_the_journal_storage_is_retried_and_its_run_killed(
    tmp_path, corpus_path
):
    """The embedded storage has no heartbeats: a dead pid on this host stands for them."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from orchestrator.config import build

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_path.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "char-gpt")
    long = {**TINY, "max_steps": "600", "eval_every": "20"}
    assert record_baseline(tracker, build("smoke", long, data=str(corpus))).ok
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    args = [
        "search",
        "--trials",
        "1",
        "--space",
        str(space),
        "--study",
        "killed",
        "--tracking-uri",
        uri,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and proc.poll() is None
        running = [
            r
            for r in tracker.search("attributes.status = 'RUNNING'")
            if r.tags.get(T.TAG_ROLE) == "search-trial"
        ]
        victim = next((r for r in running if "val_loss" in r.metrics), None)
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)

    res = run_search(tracker, trials=1, space=str(space), study_name="killed", plots=False)
    trials = study_of(tracker, "killed").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "died mid-trial" in trials[0].user_attrs["sweep.fail_reason"]
    assert trials[1].params == trials[0].params  # retried once, same point
    killed = tracker.get_run(victim.run_id)
    assert killed.status == "KILLED" and "died mid-trial" in killed.tags[T.TAG_REASON]
    runs = tracker.children(res.parent_id)
    assert not [r for r in runs if r.status == "RUNNING"]
    assert sorted(r.status for r in runs) == ["FINISHED", "KILLED"]
    assert tracker.get_run(res.parent_id).status == "FINISHED"
