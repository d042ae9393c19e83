"""`--sampler grid`: every point of the grid trained exactly once, the baseline's included.

The grid is the space's lists widened by the baseline's own values (space.anchored), so the
baseline's point is always one of its points: trial 0, enqueued (and linked to the baseline's
own run, not trained). The study ends once every point has been had once: at the grid's size
(or --trials, if lower). A point some finished run already trained (here: the searches of
earlier tests in the same store) is linked to it, never trained twice.
"""

from __future__ import annotations

from envs import env_of
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.config import recorded_config
from orchestrator.sweeps.search import run_search
from orchestrator.sweeps.search.attrs import ATTR_RUN


def trained_points(tracker, study) -> list[tuple]:
    points = []
    for t in study.get_trials():
        assert t.state == TrialState.COMPLETE, (t.number, t.state, t.user_attrs)
        run = tracker.get_run(t.user_attrs[ATTR_RUN])
        assert run.state.has_result, (t.number, run.state)  # trained or linked, once
        if run.state is T.RunState.REUSED:
            source = tracker.get_run(run.tags[T.TAG_REUSED_FROM])
            assert source.state is T.RunState.COMPLETE
            assert source.tags[T.TAG_CONFIG_HASH] == run.tags[T.TAG_CONFIG_HASH]
        points.append(tuple(sorted(t.params.items())))
    return points


def grid_search(tracker, tmp_path, name, text, trials):
    space = tmp_path / f"{name}.toml"
    space.write_text(text, encoding="utf-8")
    return run_search(
        env_of(tracker),
        trials=trials,
        space=str(space),
        sampler="grid",
        pruner="none",
        seed=1,
        study_name=name,
        plots=False,
    )


def test_a_grid_holding_the_baselines_point_trains_each_point_once(search_env, study_of, tmp_path):
    tracker, _, _ = search_env  # the baseline: dropout 0.0 (schedule: one of the two)
    text = "[dropout]\nvalues = [0.0, 0.1]\n[schedule]\nvalues = ['constant', 'cosine']\n"
    res = grid_search(tracker, tmp_path, "grid-on", text, 4)
    points = trained_points(tracker, study_of(tracker, "grid-on"))
    assert len(points) == 4 and len(set(points)) == 4, points
    assert res.counts["complete"] == 4 and not res.notes


def test_a_grid_without_the_baselines_point_gets_it_added(search_env, study_of, tmp_path):
    tracker, baseline, _ = search_env
    text = "[dropout]\nvalues = [0.1, 0.2]\n[schedule]\nvalues = ['constant', 'cosine']\n"
    res = grid_search(tracker, tmp_path, "grid-off", text, 10)
    study = study_of(tracker, "grid-off")
    points = trained_points(tracker, study)
    # dropout 0.0 (the baseline's) joins the list: a 3 x 2 grid, trial 0 its baseline point
    assert len(points) == 6 and len(set(points)) == 6, points
    flat = recorded_config(baseline).to_flat()
    assert study.trials[0].params == {"dropout": 0.0, "schedule": flat["schedule"]}
    assert "the grid has 6 points: the study stops at 6 trials" in res.notes


def test_a_grid_cut_short_by_trials_goes_on_when_rerun(search_env, study_of, tmp_path):
    tracker, _, _ = search_env
    text = "[dropout]\nvalues = [0.0, 0.1]\n[schedule]\nvalues = ['constant', 'cosine']\n"
    grid_search(tracker, tmp_path, "grid-more", text, 2)
    study = study_of(tracker, "grid-more")
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2  # none waiting
    grid_search(tracker, tmp_path, "grid-more", text, 4)
    points = trained_points(tracker, study_of(tracker, "grid-more"))
    assert len(points) == 4 and len(set(points)) == 4, points


def test_the_shipped_dropout_grid_runs_with_the_grid_sampler(search_env, study_of):
    """experiments/spaces/dropout-grid.toml: the course's tiny dropout sweep (0.0, 0.1,
    0.2) as `--sampler grid` takes it, each point once."""
    from orchestrator.sweeps.search import load_space, space_names

    assert "dropout-grid" in space_names()
    assert [p.choices for p in load_space("dropout-grid").params] == [(0.0, 0.1, 0.2)]
    tracker, baseline, _ = search_env
    res = run_search(
        env_of(tracker),
        trials=10,
        space="dropout-grid",
        sampler="grid",
        pruner="none",
        study_name="shipped-grid",
        baseline_id=baseline.run_id,
        plots=False,
    )
    points = trained_points(tracker, study_of(tracker, "shipped-grid"))
    assert sorted(points) == [(("dropout", v),) for v in (0.0, 0.1, 0.2)]
    assert res.counts["complete"] == 3
    assert res.notes == ["the grid has 3 points: the study stops at 3 trials"]
