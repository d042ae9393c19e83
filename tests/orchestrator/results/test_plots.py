"""`sweep plot`: PNG figures of a sweep, written to a folder and attached to the parent run."""

from __future__ import annotations

import re
from pathlib import Path

from smoke_store import png_size, smoke_store  # noqa: F401  (fixture)
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def _plot(store, *args: str):
    return runner.invoke(
        app, ["plot", "--tracking-uri", store.uri, "--experiment", store.experiment, *args]
    )


def test_plot_writes_valid_pngs_and_attaches_them(smoke_store, tmp_path):  # noqa: F811
    out = tmp_path / "figs"
    res = _plot(smoke_store, "--knob", "dropout", "-o", str(out))
    assert res.exit_code == 0, res.output
    printed = [Path(line) for line in res.stdout.splitlines() if line.endswith(".png")]
    names = sorted(p.name for p in printed)
    assert names == ["delta-best-val-loss.png", "val-loss-flops.png", "val-loss.png"]
    for p in printed:
        assert p.parent == out and p.is_file()
        w, h = png_size(p)
        assert w >= 400 and h >= 300, (p, w, h)
        assert p.stat().st_size > 10_000  # a drawn figure, not an empty canvas
    assert not list(out.glob(".*")), "no temporary files left behind"

    from orchestrator.tracking import Tracker

    tracker = Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    attached = set(tracker.list_artifacts(smoke_store.sweep_id, "plots"))
    assert {
        "plots/val-loss.png",
        "plots/val-loss-flops.png",
        "plots/delta-best-val-loss.png",
    } <= attached


def test_plot_default_folder_is_next_to_the_store(smoke_store):  # noqa: F811
    res = _plot(smoke_store, "--sweep", smoke_store.sweep_id)
    assert res.exit_code == 0, res.output
    want = smoke_store.dir / "sweep-plots" / f"ablate-dropout-{smoke_store.sweep_id[:8]}"
    assert (want / "val-loss.png").is_file() and (want / "delta-best-val-loss.png").is_file()


def test_plot_refuses_a_run_that_is_not_a_sweep(smoke_store):  # noqa: F811
    res = _plot(smoke_store, "--sweep", smoke_store.baseline_id)
    assert res.exit_code == 2
    assert re.search(r"not a sweep", res.output)


def test_band_uses_steps_every_seed_has():
    from orchestrator.results.plots import _band

    steps, mean, lo, hi = _band([[(10, 3.0), (20, 2.0), (30, 1.0)], [(10, 4.0), (20, 3.0)]])
    assert steps == [10, 20]
    assert mean == [3.5, 2.5] and lo == [3.0, 2.0] and hi == [4.0, 3.0]


def _search_store(tmp_path: Path, with_journal: bool):
    """A search parent with trial children (no training): curves from logged metrics."""
    from orchestrator import tracking as T
    from orchestrator.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "search-test")
    parent = tracker.create_run("search:demo", tags={T.TAG_ROLE: "search", T.TAG_STUDY: "demo"})
    for n in range(4):
        child = tracker.create_run(
            f"trial-{n}", parent_id=parent, tags={T.TAG_ROLE: "search-trial", T.TAG_TRIAL: str(n)}
        )
        for step in (10, 20, 30):
            tracker.log_metrics(child, {"val_loss": 3.0 - 0.01 * step * (n + 1) / 4}, step)
        tracker.end_run(child, T.RunState.COMPLETE)
    tracker.end_run(parent, T.RunState.COMPLETE)
    if with_journal:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna-journal.log")))
        study = optuna.create_study(study_name="demo", storage=storage)
        study.optimize(
            lambda t: (
                (t.suggest_float("dropout", 0, 0.3) - 0.1) ** 2
                + t.suggest_int("n_layer", 1, 4) * 0.01
            ),
            n_trials=8,
        )
    return tracker, tracker.get_run(parent)


def test_search_figures_come_from_the_optuna_study(tmp_path):
    from orchestrator.results.plots import plot_sweep

    tracker, parent = _search_store(tmp_path, with_journal=True)
    res = plot_sweep(tracker, parent, tmp_path / "out")
    names = sorted(p.name for p in res.paths)
    assert names == [
        "optimization_history.png",
        "parallel_coordinate.png",
        "param_importances.png",
        "val-loss.png",
    ], res.notes
    for p in res.paths:
        w, h = png_size(p)
        assert w >= 400 and h >= 300
    # results/ never writes to the store: `sweep plot` attaches them through the sweep
    assert tracker.list_artifacts(parent.run_id, "plots") == []


def test_search_without_a_reachable_study_says_so(tmp_path):
    from orchestrator.results.plots import plot_sweep

    tracker, parent = _search_store(tmp_path, with_journal=False)
    res = plot_sweep(tracker, parent, tmp_path / "out")
    assert [p.name for p in res.paths] == ["val-loss.png"]
    assert any("optuna-journal.log" in n and "skipped" in n for n in res.notes), res.notes


def _delta_table(n_trials: int):
    """A search's table as sweep_table gives it: the baseline, then trial rows."""
    import dataclasses

    from orchestrator.results.settings import Settings
    from orchestrator.results.table import Table, TableRow
    from orchestrator.results.verdicts import Verdict

    blank = {f.name: float("nan") for f in dataclasses.fields(TableRow)}
    blank |= {"knob": "search", "pairing": "", "state": "complete", "note": "", "run_ids": ""}
    rows = [
        TableRow(
            **blank
            | {
                "value": "baseline",
                "verdict": Verdict.BASELINE,
                "label": "baseline",
                "delta": 0.0,
                "best_val_loss_std": 0.004,
                "seeds": 2,
            }
        )
    ]
    for n in range(n_trials):
        verdict = (Verdict.BETTER, Verdict.WORSE, Verdict.INCONCLUSIVE)[n % 3]
        rows.append(
            TableRow(
                **blank
                | {
                    "value": f"trial-{n}: dropout={0.01 * n:.3g} lr={0.0003 * (n + 1):.3g} n_layer=3",
                    "verdict": verdict,
                    "label": str(verdict),
                    "delta": 0.01 * (n % 5 - 2),
                    "seeds": 1,
                }
            )
        )
    return Table(rows, Settings(), legend="", ci_label="95% CI")


def _overlaps(boxes) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


def test_search_delta_labels_are_trial_numbers_that_do_not_overlap():
    import matplotlib.pyplot as plt

    from orchestrator.results.plots import figure_deltas

    class Parent:  # figure_deltas reads only the parent run's name
        name = "search:demo"

    for n_trials in (7, 8, 20, 40):
        fig = figure_deltas(Parent(), _delta_table(n_trials))
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        texts = [t.get_text() for t in labels]
        assert texts == ["baseline", *(str(n) for n in range(n_trials))], texts
        assert _overlaps([t.get_window_extent(renderer) for t in labels]) == [], (n_trials, texts)
        notes = [c for c in ax.texts if c.get_text()]  # the delta written over each bar
        assert _overlaps([c.get_window_extent(renderer) for c in notes]) == [], n_trials
        plt.close(fig)


def test_drawing_optuna_figures_leaves_matplotlib_style_alone():
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna

    from orchestrator.results.plots import figures_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.optimize(
        lambda t: (t.suggest_float("dropout", 0, 0.3) - 0.1) ** 2 + t.suggest_int("n", 1, 4) / 100,
        n_trials=8,
    )
    before = dict(matplotlib.rcParams)
    figs, notes = figures_optuna(study)
    assert len(figs) == 3, notes  # all three drawn, in Optuna's own style
    after = dict(matplotlib.rcParams)
    changed = {k: (before[k], after[k]) for k in before if str(before[k]) != str(after[k])}
    assert changed == {}  # the figures drawn next (reports) keep the default look
    for _, fig in figs:
        plt.close(fig)
