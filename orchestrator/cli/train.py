"""Commands that train: baseline, ablate, search, confirm."""

from __future__ import annotations

from typing import Annotated

import typer

from ..choices import Pruner, Sampler
from ..results.export import PrintedFormat
from ..tracking.schema import RunState
from .common import (
    DEFAULT_EXPERIMENT,
    Alpha,
    BaselineId,
    Experiment,
    Margin,
    PrintFormat,
    Seeds,
    Threads,
    TrackingUri,
    _progress,
    _signals_as_interrupt,
    _tracker,
    app,
    check_settings,
    fail,
    handled,
    print_table,
)


@app.command()
@handled
def baseline(
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Profile name in experiments/ or a .toml path.")
    ] = "baseline",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set n_layer=6 (repeatable)."),
    ] = None,
    seeds: Annotated[
        int, typer.Option("--seeds", help="Seeds (2+ gives seed noise for verdicts).")
    ] = 1,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Corpus: shakespeare (default), pydoc, or a text file."),
    ] = None,
    threads: Threads = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train and record the baseline every later sweep compares against."""
    from ..baseline import record_baseline
    from ..config import build, parse_overrides

    overrides = parse_overrides(set_ or [])
    if threads is not None:
        overrides["threads"] = str(threads)
    cfg = build(profile, overrides, data)
    tracker = _tracker(experiment, tracking_uri, writes=True)
    _signals_as_interrupt()
    result = record_baseline(tracker, cfg, seeds, _progress())
    typer.echo(f"baseline run {result.run_id} in experiment '{experiment}' ({tracker.uri})")
    if not result.ok:
        raise fail(
            "the baseline did not finish: "
            + "; ".join(
                o.reason or o.state for o in result.outcomes if o.state is not RunState.COMPLETE
            ),
            1,
        )


@app.command()
@handled
def ablate(
    knob: Annotated[
        str, typer.Option("--knob", "-k", help="The one knob to change (e.g. dropout).")
    ],
    values: Annotated[
        str | None,
        typer.Option("--values", help="Comma-separated values (default: experiments/knobs.toml)."),
    ] = None,
    seeds: Seeds = None,
    until_clear: Annotated[
        bool,
        typer.Option(
            "--until-clear",
            help="Add seeds to the baseline and the undecided values until every row has a "
            "verdict (valid under repeated looks: alpha spending).",
        ),
    ] = False,
    max_seeds: Annotated[
        int | None,
        typer.Option(
            "--max-seeds", help="With --until-clear: stop at this many seeds (default 10)."
        ),
    ] = None,
    margin: Margin = None,
    alpha: Alpha = None,
    baseline_id: BaselineId = None,
    threads: Threads = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = PrintedFormat.TABLE,
) -> None:
    """Change one knob at a time against the recorded baseline, then print the comparison."""
    from ..ablate import run_ablation, split_values
    from ..results.table import sweep_table

    check_settings(margin, alpha)
    tracker = _tracker(experiment, tracking_uri, create=False, writes=True)
    _signals_as_interrupt()
    result = run_ablation(
        tracker,
        knob,
        split_values(values),
        seeds,
        baseline_id,
        _progress(),
        margin=margin,  # None: what the sweep recorded (a new sweep: the default)
        alpha=alpha,
        until_clear=until_clear,
        max_seeds=max_seeds,
        threads=threads,
    )
    df = sweep_table(tracker, tracker.get_run(result.parent_id))
    print_table(df, fmt)
    typer.echo(f"\nsweep run {result.parent_id}; browse it with `sweep ui` (store {tracker.uri})")
    failed = [o for o in result.trained if o.state is RunState.FAILED]
    if failed:
        typer.secho(
            f"{len(failed)} run(s) failed: " + "; ".join(f"{o.name}: {o.reason}" for o in failed),
            err=True,
        )


@app.command()
@handled
def search(
    trials: Annotated[
        int,
        typer.Option(
            "--trials",
            "-n",
            help="Stop when the study holds this many finished trials (all workers, all re-runs).",
        ),
    ] = 20,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop starting trials after this many seconds."),
    ] = None,
    space: Annotated[
        str, typer.Option("--space", help="Space name in experiments/spaces/ or a .toml path.")
    ] = "default",
    sampler: Annotated[
        Sampler, typer.Option("--sampler", help="Which point a trial tries.")
    ] = Sampler.TPE,
    pruner: Annotated[
        Pruner, typer.Option("--pruner", help="When a trial stops early.")
    ] = Pruner.HYPERBAND,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="Study name; the same name joins or resumes it (default: <space>-<baseline id>).",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna storage: postgresql://... for several machines (default: a journal file next to the MLflow store).",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Worker processes on this machine.")
    ] = 1,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Sampler seed (worker i uses seed+i).")
    ] = None,
    confirm: Annotated[
        int | None,
        typer.Option(
            "--confirm",
            help="Then re-train the top K trials with the baseline's seeds (sweep confirm).",
        ),
    ] = None,
    baseline_id: BaselineId = None,
    threads: Threads = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = PrintedFormat.TABLE,
) -> None:
    """Optuna search around the recorded baseline, every trial a nested MLflow run."""
    from ..search import report_lines, run_search

    _check_confirm(confirm, trials)  # before anything trains
    tracker = _tracker(experiment, tracking_uri, create=False, writes=True)
    _signals_as_interrupt()
    result = run_search(
        tracker,
        trials=trials,
        space=space,
        sampler=sampler,
        pruner=pruner,
        study_name=study,
        storage=storage,
        workers=workers,
        seed=seed,
        timeout=timeout,
        baseline_id=baseline_id,
        progress=_progress(),
        threads=threads,
    )
    print_table(result.table, fmt)
    typer.echo("\n" + "\n".join(report_lines(result)))
    if confirm:
        typer.echo("")
        _confirm(tracker, result.parent_id, confirm, None, None, None, fmt, threads)


def _check_confirm(top: int | None, trials: int) -> None:
    from ..errors import UserError

    if top is not None and top < 1:
        raise UserError(f"--confirm must be 1 or more (how many top trials to confirm), got {top}")
    if top is not None and top > trials:
        raise UserError(
            f"--confirm {top} is more than the --trials {trials} of the search: "
            f"at most {trials} trial(s) can be confirmed"
        )


def _confirm(tracker, sweep_id, top, seeds, margin, alpha, fmt, threads=None) -> None:
    from ..confirm import run_confirm
    from ..results.table import sweep_table

    result = run_confirm(
        tracker, sweep_id, top, seeds, _progress(), margin=margin, alpha=alpha, threads=threads
    )
    for note in result.notes:
        typer.secho(f"note: {note}", err=True)
    print_table(sweep_table(tracker, tracker.get_run(result.parent_id)), fmt)
    typer.echo(
        f"\nconfirm run {result.parent_id}; `sweep table --sweep {result.parent_id}` prints it again"
    )


@app.command()
@handled
def confirm(
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Search parent run id (default: the latest search)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="How many of the best trials to confirm.")] = 3,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="Seeds per trial (default: the baseline's seeds).")
    ] = None,
    margin: Margin = None,
    alpha: Alpha = None,
    threads: Threads = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = PrintedFormat.TABLE,
) -> None:
    """Re-train a search's top trials with the baseline's seeds: paired verdicts, no winner's curse."""
    check_settings(margin, alpha)
    tracker = _tracker(experiment, tracking_uri, create=False, writes=True)
    _signals_as_interrupt()
    _confirm(tracker, sweep, top, seeds, margin, alpha, fmt, threads)
