"""Creating, joining and resuming a study and its MLflow parent run; refused options."""

from __future__ import annotations

import pytest
from envs import env_of
from optuna.trial import TrialState
from typer.testing import CliRunner

from orchestrator import tracking as T
from orchestrator.config import recorded_config
from orchestrator.errors import UserError
from orchestrator.results.verdicts import Verdict
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_RUN
from orchestrator.sweeps.search.context import Options
from orchestrator.sweeps.search.space import trial_config

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


def test_search_logs_one_run_per_trial_starts_from_the_baseline_and_resumes(
    search_env, study_of, history, capsys
):
    tracker, baseline, space = search_env
    res = run_search(
        env_of(tracker),
        trials=4,
        space=str(space),
        pruner="none",
        seed=0,
        study_name="four",
        plots=True,
    )
    # before training, an estimate from the baseline's run of the same shape
    said = capsys.readouterr().err
    assert "estimated time: " in said and "per trial" in said and "for 4 trials" in said, said
    study = study_of(tracker, "four")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # trial 0 is the baseline's own values
    base = recorded_config(baseline)
    assert trials[0].params == {"dropout": base.gpt.dropout, "lr": base.train.lr}

    parent = tracker.get_run(res.parent_id)
    assert parent.name == "search:four" and parent.status == "FINISHED"
    assert parent.state is T.RunState.COMPLETE
    assert parent.tags[T.TAG_ROLE] == "search" and parent.tags[T.TAG_BASELINE] == baseline.run_id
    children = tracker.children(res.parent_id)
    assert sorted(r.name for r in children) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    for run in children:
        t = trials[int(run.tags[T.TAG_TRIAL])]
        # trial 0 (the baseline's values at its seed) is linked to the baseline's run; the
        # others trained, or (this store is shared by the folder's tests) were linked to an
        # earlier test's run of the same config and seed
        assert run.status == "FINISHED" and run.state.has_result
        if t.number == 0:
            assert run.state is T.RunState.REUSED
            assert run.tags[T.TAG_REUSED_FROM] == baseline.run_id
        assert run.tags[T.TAG_ROLE] == "search-trial" and t.user_attrs[ATTR_RUN] == run.run_id
        assert history(tracker, run.run_id, "val_loss") == EVAL_STEPS
        assert set(run.metrics) >= SUMMARY
        assert run.metrics["best_val_loss"] == pytest.approx(t.value)
        # only the searched keys differ from the baseline
        cfg = trial_config(base, t.params).to_flat()
        assert {k: v for k, v in run.params.items() if k in cfg and k not in ("data",)} == {
            k: str(v) for k, v in cfg.items() if k != "data"
        }
        trained = T.source_of(tracker, run)  # trial 0: the baseline's run holds the checkpoint
        assert "checkpoints/best.pt" in tracker.list_artifacts(trained.run_id, "checkpoints")
    # the table: the baseline row, then one row per trial
    assert len(res.table.rows) == 5 and res.table.rows[0].verdict is Verdict.BASELINE
    assert res.table.rows[1].value.startswith("trial-0: dropout=")
    assert res.best is not None and res.best["command"].startswith("sweep baseline --profile smoke")
    assert parent.tags[T.TAG_BEST_TRIAL] == str(res.best["number"])
    assert {p.name for p in res.plots} == {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
    }
    assert {"plots/optimization_history.png"} <= set(tracker.list_artifacts(res.parent_id, "plots"))
    assert {"table.csv", "table.md"} <= set(tracker.list_artifacts(res.parent_id))
    # `sweep plot` finds the study through the storage recorded on the parent run
    from orchestrator.results.plots import plot_sweep

    assert parent.tags[T.TAG_STORAGE] == str(tracker.store_dir / "optuna-journal.log")
    shown = plot_sweep(tracker, parent, tracker.store_dir / "plot-check")
    assert {"optimization_history.png", "val-loss.png", "delta-best-val-loss.png"} <= {
        p.name for p in shown.paths
    }

    # the same study again with --trials 6: exactly two more
    res6 = run_search(
        env_of(tracker),
        trials=6,
        space=str(space),
        pruner="none",
        seed=0,
        study_name="four",
        plots=False,
    )
    assert res6.parent_id == res.parent_id
    assert [t.number for t in study_of(tracker, "four").get_trials()] == [0, 1, 2, 3, 4, 5]
    assert len(tracker.children(res.parent_id)) == 6 and len(res6.table.rows) == 7
    assert tracker.get_run(res.parent_id).status == "FINISHED"
    # and with --trials 6 once more: nothing to do
    run_search(
        env_of(tracker), trials=6, space=str(space), pruner="none", study_name="four", plots=False
    )
    assert len(study_of(tracker, "four").get_trials()) == 6


def test_a_study_refuses_to_be_joined_with_another_space(search_env, tmp_path):
    tracker, _, space = search_env
    res = run_search(
        env_of(tracker), trials=1, space=str(space), pruner="none", study_name="owned", plots=False
    )
    other = tmp_path / "other.toml"
    other.write_text("[dropout]\nlow = 0.0\nhigh = 0.5\n", encoding="utf-8")
    with pytest.raises(UserError, match="was started with another space"):
        run_search(env_of(tracker), trials=2, space=str(other), study_name="owned", plots=False)
    assert len(tracker.children(res.parent_id)) == 1
    assert tracker.get_run(res.parent_id).state is T.RunState.COMPLETE


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "--workers must be at least 1 (got 0)"),
        ({"timeout": 0.0}, "--timeout must be a finite number of seconds > 0 (got 0.0)"),
        (
            {"workers": 2, "space": object()},
            "--workers > 1 takes sampler, pruner and space by name",
        ),
        ({"trials": 0}, "--trials must be at least 1 (got 0)"),
        ({"sampler": "bayes"}, "unknown sampler 'bayes'; choose one of: tpe, random, cmaes, grid"),
        ({"pruner": "asha"}, "unknown pruner 'asha'; choose one of: hyperband, median, none"),
    ],
)
def test_options_are_checked_when_built(options, message):
    with pytest.raises(UserError) as e:
        Options(**options)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # the choices are enums (orchestrator/choices.py): Typer refuses a bad one, listing them
        (["--sampler", "bayes"], "'bayes' is not one of 'tpe', 'random', 'cmaes', 'grid'"),
        (["--pruner", "asha"], "'asha' is not one of 'hyperband', 'median', 'none'"),
        (["--trials", "0"], "--trials must be at least 1 (got 0)"),
        (["--workers", "0"], "--workers must be at least 1 (got 0)"),
        (["--space", "nope"], "unknown space 'nope'; known: default, dropout-grid, small"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(search_env, args, message):
    from orchestrator.cli import app

    tracker, _, _ = search_env
    result = CliRunner().invoke(app, ["search", "--tracking-uri", tracker.uri, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_each_trial_says_its_params_and_the_study_so_far_when_it_starts(search_env, tmp_path):
    import io
    import re

    from envs import env_of

    from orchestrator.progress import Progress
    from orchestrator.sweeps.search import run_search

    tracker, baseline, space = search_env
    out = io.StringIO()
    result = run_search(
        env_of(tracker, Progress(live=False, stream=out)),
        trials=3,
        space=str(space),
        sampler="random",
        pruner="none",
        study_name="said",
        storage=f"journal:{tmp_path / 'j.log'}",
        seed=3,
        baseline_id=baseline.run_id,
        plots=False,
    )
    said = out.getvalue()
    assert re.search(r"^trial-0: dropout=\S+ lr=\S+ \(0 of 3 finished\)$", said, re.M), said
    assert re.search(
        r"^trial-2: dropout=\S+ lr=\S+ \(2 of 3 finished, best so far trial-[01] \d\.\d{4} "
        r"\(dropout=\S+ lr=\S+\)\)$",
        said,
        re.M,
    ), said
    # single-seed trials: the legend says what a single seed means, never "across 0 rows"
    assert "0 row" not in result.table.legend
    assert "single seed: one pair cannot be told from noise" in result.table.legend
