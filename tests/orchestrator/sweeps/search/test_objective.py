"""One trial: pruned, duplicate and diverging trials, in Optuna and in MLflow."""

from __future__ import annotations

import optuna
import pytest
from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_REASON, ATTR_REUSED, ATTR_RUN


class PruneAfterTrialZero(optuna.pruners.BasePruner):
    """Prunes every trial but the first at its first report."""

    def prune(self, study, trial) -> bool:
        return trial.number > 0


def test_a_pruned_trial_is_pruned_in_optuna_and_tagged_in_mlflow(search_env, study_of, history):
    tracker, _, space = search_env
    res = run_search(
        env_of(tracker),
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
        assert run.status == "FINISHED" and run.state is T.RunState.PRUNED
        assert "pruned at step 4" in run.tags[T.TAG_REASON]
        assert history(tracker, run.run_id, "val_loss") == [4]
        assert t.intermediate_values == {
            4: pytest.approx(tracker.client.get_metric_history(run.run_id, "val_loss")[0].value)
        }
    assert res.counts["pruned"] == 2 and res.counts["complete"] == 1
    # trial 0 is the baseline's own config and seed: linked to the baseline's run, not trained
    assert [r.state for r in res.table.rows] == ["complete", "reused", "pruned", "pruned"]


def test_a_trial_with_the_same_params_is_not_trained_again(search_env, study_of):
    tracker, baseline, tmp_space = search_env
    space = tmp_space.with_name("one-point.toml")
    space.write_text(
        "[dropout]\nvalues = [0.0]\n[schedule]\nchoices = ['constant']\n", encoding="utf-8"
    )
    res = run_search(
        env_of(tracker), trials=2, space=str(space), sampler="grid", study_name="dup", plots=False
    )
    # the grid has one point (the baseline's): the study stops at one trial
    assert len(study_of(tracker, "dup").get_trials()) == 1
    assert "note: the grid has 1 points: the study stops at 1 trials" in "\n".join(
        f"note: {n}" for n in res.notes
    )
    run_search(
        env_of(tracker), trials=2, space=str(space), sampler="random", study_name="dup", plots=False
    )
    t0, t1 = study_of(tracker, "dup").get_trials()
    assert t1.state == TrialState.COMPLETE and t1.value == t0.value and t1.params == t0.params
    # both are the baseline's own point: each is linked to the baseline's run, none trained
    for t in (t0, t1):
        assert t.user_attrs[ATTR_REUSED] == baseline.run_id
        run = tracker.get_run(t.user_attrs[ATTR_RUN])
        assert run.status == "FINISHED" and run.state is T.RunState.REUSED
        assert run.metrics["best_val_loss"] == baseline.metrics["best_val_loss"] == t.value
        assert run.tags[T.TAG_REUSED_FROM] == baseline.run_id
        assert "reused from baseline" in run.tags[T.TAG_REASON]
        assert tracker.list_artifacts(run.run_id) == []  # the checkpoint stays with the source


def test_a_diverging_trial_fails_alone_and_the_study_goes_on(search_env, study_of):
    tracker, _baseline, tmp_space = search_env
    space = tmp_space.with_name("diverge.toml")
    # lr 1e6 with no clipping blows up within a few steps; the grid visits it after trial 0
    space.write_text("[lr]\nvalues = [0.001, 1e6]\n[grad_clip]\nvalues = [0.0]\n", encoding="utf-8")
    res = run_search(
        env_of(tracker),
        trials=2,
        space=str(space),
        sampler="grid",
        study_name="diverge",
        plots=False,
    )
    trials = study_of(tracker, "diverge").get_trials()
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL"]
    bad = next(t for t in trials if t.state == TrialState.FAIL)
    assert bad.params["lr"] == 1e6 and "non-finite loss" in bad.user_attrs[ATTR_REASON]
    run = tracker.get_run(bad.user_attrs[ATTR_RUN])
    assert (
        run.status == "FAILED"
        and run.state is T.RunState.FAILED
        and "non-finite loss" in run.tags[T.TAG_REASON]
    )
    assert tracker.get_run(res.parent_id).status == "FINISHED"
    assert res.counts["fail"] == 1 and res.counts["complete"] == 1
    row = res.table.to_frame().query("state == 'failed'").iloc[0]
    # the diverged trial is counted, never dropped: its row says so
    assert row["verdict"] == "unstable (1/1 diverged)" and row["seeds"] == 0
