"""One trial: pruned, duplicate and diverging trials, in Optuna and in MLflow."""

from __future__ import annotations

import os
import signal
import socket

import optuna
import pytest
from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.errors import Interrupted
from orchestrator.execution.processes import STOP_SIGNALS, interrupt_once
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_REASON, ATTR_REUSED, ATTR_RUN, ATTR_WORKER


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


class SignalWhileAsked(optuna.samplers.RandomSampler):
    """SIGTERM to this process while Optuna creates trial `at`: inside `study.ask`, after the
    storage holds the trial RUNNING and before the objective (or a heartbeat) knows it."""

    def __init__(self, at: int):
        super().__init__(seed=0)
        self.at = at

    def before_trial(self, study, trial):  # called by `study.ask`, the trial just created
        if trial.number == self.at:
            signal.raise_signal(signal.SIGTERM)  # its handler runs right here
        super().before_trial(study, trial)


def test_a_signal_while_optuna_creates_a_trial_fails_it_and_kills_the_search(search_env, study_of):
    """Without the gate the signal escaped `study.ask` and left trial 1 RUNNING with no
    worker named on it: no heartbeat or dead-pid check could ever end it, and the parent
    run stayed RUNNING "while another process trains" (a Slurm cancel did this in CI)."""
    tracker, _, space = search_env
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    interrupt_once()  # SIGTERM -> Interrupted("SIGTERM"), as in a worker
    try:
        with pytest.raises((Interrupted, KeyboardInterrupt), match="SIGTERM"):
            run_search(
                env_of(tracker),
                trials=3,
                space=str(space),
                sampler=SignalWhileAsked(at=1),
                pruner="none",
                study_name="signal-while-asked",
                plots=False,
            )
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    trials = study_of(tracker, "signal-while-asked").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs[ATTR_WORKER] == f"{socket.gethostname()}:{os.getpid()}:1"
    assert ATTR_RUN not in trials[1].user_attrs  # stopped before anything was trained
    (parent,) = tracker.search(
        f"tags.`{T.TAG_STUDY}` = 'signal-while-asked' and tags.`{T.TAG_ROLE}` = '{T.Role.SEARCH}'"
    )
    assert parent.state is T.RunState.KILLED, parent.tags.get(T.TAG_REASON)
    assert "SIGTERM" in parent.tags[T.TAG_REASON]
    assert not [r for r in T.running(tracker) if r.tags.get(T.TAG_STUDY) == "signal-while-asked"]
