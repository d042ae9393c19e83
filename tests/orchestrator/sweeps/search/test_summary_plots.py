"""A search's figures land in one folder: the one `sweep plot` uses for that search."""

from __future__ import annotations

from pathlib import Path

from clitools import sweep
from envs import env_of

from orchestrator.sweeps.search import run_search


def test_a_searchs_plots_and_sweep_plot_share_one_folder(search_env, tmp_path):
    tracker, baseline, space = search_env
    result = run_search(
        env_of(tracker),
        trials=2,
        space=str(space),
        sampler="random",
        pruner="none",
        study_name="one-folder",
        seed=5,
        baseline_id=baseline.run_id,
    )
    assert result.plots, result.notes
    folders = {p.parent for p in result.plots}
    r = sweep("plot", "--sweep", result.parent_id, "--tracking-uri", tracker.uri)
    assert r.exit_code == 0, r.output
    drawn = [line for line in r.stdout.splitlines() if line.endswith(".png")]
    assert drawn
    folders |= {Path(p).parent for p in drawn}
    assert len(folders) == 1, folders
    assert next(iter(folders)).name.startswith("search-one-folder-")
