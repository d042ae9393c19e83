"""The search's side of `--launcher slurm` that needs no cluster: what Options refuse or allow
with a launcher, and the trials of worker jobs that ended mid-trial. On a real cluster:
tests/e2e/test_slurm_commands.py."""

from __future__ import annotations

import pytest
from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.errors import UserError
from orchestrator.sweeps.search.attrs import ATTR_REASON, ATTR_RUN
from orchestrator.sweeps.search.budget import retried_number
from orchestrator.sweeps.search.context import Options, worker_limit
from orchestrator.sweeps.search.study import prepare
from orchestrator.sweeps.search.workers import fail_trials_of
from orchestrator.tracking import RunState


def test_with_a_launcher_the_journal_is_refused_and_the_local_worker_limit_is_not():
    with pytest.raises(UserError) as e:
        Options(launcher="slurm", storage="journal:/shared/optuna.log")
    assert str(e.value).startswith("--launcher slurm: the Optuna journal file cannot be shared")
    many = worker_limit()[0] + 1  # more than this machine runs: the cluster's business
    options = Options(launcher="slurm", workers=many, storage="postgresql://u:p@db/optuna")
    assert options.workers == many
    with pytest.raises(UserError, match="more than this machine can run"):
        Options(workers=many)
    with pytest.raises(UserError, match="takes sampler, pruner and space by name"):
        Options(launcher="slurm", storage="postgresql://u:p@db/optuna", space=object())


def test_a_trial_whose_job_ended_mid_trial_is_failed_retried_and_its_run_killed(
    search_env, study_of
):
    tracker, _, space = search_env
    ctx = prepare(env_of(tracker), Options(space=str(space), study="jobs-ended", trials=4))
    runs = {}
    for job in ("9_0", "9_1"):  # two trials training in two jobs of array 9
        trial = ctx.study.ask()
        trial.suggest_float("dropout", 0.0, 0.3)
        runs[job] = tracker.create_run(
            f"trial-{trial.number}",
            parent_id=ctx.parent_id,
            tags={T.TAG_SLURM_JOB: job, T.TAG_TRIAL: str(trial.number)},
        )
        trial.set_user_attr(ATTR_RUN, runs[job])

    fail_trials_of(ctx, ["9_1"])  # 9_1 ended; 9_0 still runs

    trials = study_of(tracker, "jobs-ended").get_trials()
    by_run = {t.user_attrs.get(ATTR_RUN): t for t in trials if t.state != TrialState.WAITING}
    ended, live = by_run[runs["9_1"]], by_run[runs["9_0"]]
    assert ended.state == TrialState.FAIL and live.state == TrialState.RUNNING
    assert ended.user_attrs[ATTR_REASON] == "its Slurm job 9_1 ended mid-trial"
    (retry,) = [t for t in trials if retried_number(t) == ended.number]
    assert retry.state == TrialState.WAITING and retry.params == ended.params
    killed = tracker.get_run(runs["9_1"])
    assert killed.state is RunState.KILLED
    assert killed.tags[T.TAG_REASON] == (
        f"its Slurm job 9_1 ended mid-trial; Optuna marked trial {ended.number} FAIL and "
        "retries it once"
    )
    assert tracker.get_run(runs["9_0"]).state is RunState.RUNNING
