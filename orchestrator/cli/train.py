"""Commands that train: baseline, ablate, search, confirm."""

from __future__ import annotations

from typing import Annotated

import typer

from model.config import MAX_SEED

from ..choices import Fuse, Pruner, Sampler
from ..results.export import PrintedFormat
from ..tracking.schema import DEFAULT_EXPERIMENT, RunState
from .common import (
    MAX_SEEDS,
    Alpha,
    BaselineId,
    Experiment,
    FuseMax,
    FuseOption,
    Margin,
    PrintFormat,
    Register,
    Retrain,
    Seeds,
    Threads,
    TrackingUri,
    _env,
    app,
    check_settings,
    fail,
    handled,
    print_table,
    register_best,
)
from .launch import Launch, with_launcher


@app.command()
@handled(trains=True)
def baseline(
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Profile name in experiments/ or a .toml path.")
    ] = "baseline",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set n_layer=6 (repeatable)."),
    ] = None,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds", min=1, max=MAX_SEEDS, help="Seeds (2+ gives seed noise for verdicts)."
        ),
    ] = 1,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Corpus: shakespeare (default), pydoc, or a text file."),
    ] = None,
    threads: Threads = None,
    retrain: Retrain = False,
    fuse: FuseOption = Fuse.AUTO,
    fuse_max: FuseMax = None,
    register: Register = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train and record the baseline every later sweep compares against."""
    from ..config import build, parse_overrides
    from ..sweeps.baseline import record_baseline

    overrides = parse_overrides(set_ or [])
    if threads is not None:
        overrides["threads"] = str(threads)
    cfg = build(profile, overrides, data)
    env = _env(experiment, tracking_uri, retrain=retrain, fuse=fuse, fuse_max=fuse_max)
    result = record_baseline(env, cfg, seeds)
    tracker = env.tracker
    typer.echo(f"baseline run {result.run_id} in experiment '{experiment}' ({tracker.uri})")
    if not result.ok:
        raise fail(
            "the baseline did not finish: "
            + "; ".join(
                o.reason or o.state for o in result.outcomes if o.state is not RunState.COMPLETE
            ),
            1,
        )
    if register:
        register_best(tracker, result.run_id, register)


@app.command()
@handled(trains=True)
@with_launcher()
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
            help="Add seeds to the baseline and the undecided values, one at a time, until every "
            "row is decided (the verdicts hold at every look).",
        ),
    ] = False,
    max_seeds: Annotated[
        int | None,
        typer.Option(
            "--max-seeds",
            min=1,
            max=MAX_SEEDS,
            help="With --until-clear: stop at this many seeds (default 10).",
        ),
    ] = None,
    margin: Margin = None,
    alpha: Alpha = None,
    baseline_id: BaselineId = None,
    threads: Threads = None,
    retrain: Retrain = False,
    fuse: FuseOption = Fuse.AUTO,
    fuse_max: FuseMax = None,
    register: Register = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = PrintedFormat.TABLE,
    launch: Launch | None = None,
) -> None:
    """Change one knob at a time against the recorded baseline, then print the comparison."""
    # long: most of its lines are the Typer options above; the body is a few calls
    from ..sweeps.ablate import run_ablation, split_values

    check_settings(margin, alpha)
    env = _env(
        experiment,
        tracking_uri,
        threads=threads,
        retrain=retrain,
        create=False,
        launch=launch,
        fuse=fuse,
        fuse_max=fuse_max,
    )
    result = run_ablation(
        env,
        knob,
        split_values(values),
        seeds,
        baseline_id,
        margin=margin,  # None: what the sweep recorded (a new sweep: the default)
        alpha=alpha,
        until_clear=until_clear,
        max_seeds=max_seeds,
    )
    print_table(result.table, fmt)
    if result.next_step and fmt in ("table", "md"):
        typer.echo(f"\n{result.next_step}")
    typer.echo(
        f"\nsweep run {result.parent_id}; browse it with `sweep ui` (store {env.tracker.uri})"
    )
    failed = [o for o in result.trained if o.state is RunState.FAILED]
    if failed:
        typer.secho(
            f"{len(failed)} run(s) failed: " + "; ".join(f"{o.name}: {o.reason}" for o in failed),
            err=True,
        )
    if register:
        register_best(env.tracker, result.parent_id, register)


@app.command()
@handled(trains=True)
@with_launcher(detach=True)
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
        int | None,
        typer.Option("--seed", help="Sampler seed (worker i uses seed+i).", min=0, max=MAX_SEED),
    ] = None,
    confirm: Annotated[
        int | None,
        typer.Option(
            "--confirm",
            help="Then re-train the top K trials on seeds the search never trained, until each "
            "is decided (sweep confirm).",
        ),
    ] = None,
    baseline_id: BaselineId = None,
    threads: Threads = None,
    retrain: Retrain = False,
    fuse: FuseOption = Fuse.AUTO,
    fuse_max: FuseMax = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = PrintedFormat.TABLE,
    launch: Launch | None = None,
) -> None:
    """Optuna search around the recorded baseline, every trial a nested MLflow run."""
    # long: most of its lines are the Typer options above; the body is a few calls
    from ..sweeps.search import report_lines, run_search

    _check_confirm(confirm, trials, launch)  # before anything trains
    env = _env(
        experiment,
        tracking_uri,
        threads=threads,
        retrain=retrain,
        create=False,
        launch=launch,
        fuse=fuse,
        fuse_max=fuse_max,
    )
    result = run_search(
        env,
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
    )
    if not result.jobs:  # detached: no table yet
        print_table(result.table, fmt)
    typer.echo("\n" + "\n".join(report_lines(result)))
    if confirm:
        typer.echo("")
        _confirm(env, result.parent_id, confirm, None, None, None, fmt)


def _check_confirm(top: int | None, trials: int, launch: Launch | None = None) -> None:
    from ..errors import UserError

    if top is not None and launch is not None and launch.detach:
        raise UserError("--confirm waits for the search to finish: not with --detach")
    if top is not None and top < 1:
        raise UserError(f"--confirm must be 1 or more (how many top trials to confirm), got {top}")
    if top is not None and top > trials:
        raise UserError(
            f"--confirm {top} is more than the --trials {trials} of the search: "
            f"at most {trials} trial(s) can be confirmed"
        )


def _confirm(env, sweep_id, top, seeds, margin, alpha, fmt, max_seeds=None) -> str:
    from ..sweeps.confirm import run_confirm

    result = run_confirm(env, sweep_id, top, seeds, margin=margin, alpha=alpha, max_seeds=max_seeds)
    for note in result.notes:
        typer.secho(f"note: {note}", err=True)
    print_table(result.table, fmt)
    typer.echo(
        f"\nconfirm run {result.parent_id}; `sweep table --sweep {result.parent_id}` prints it again"
    )
    return result.parent_id


@app.command()
@handled(trains=True)
@with_launcher()
def confirm(
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Search parent run id (default: the latest search)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="How many of the best trials to confirm.")] = 3,
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds",
            min=1,
            max=MAX_SEEDS,
            help="Fresh seeds per trial to start with (default 3).",
        ),
    ] = None,
    max_seeds: Annotated[
        int | None,
        typer.Option(
            "--max-seeds",
            min=1,
            max=MAX_SEEDS,
            help="Add fresh seeds to undecided trials until each is decided, up to this many "
            "(default 10; equal to --seeds: no seed added).",
        ),
    ] = None,
    margin: Margin = None,
    alpha: Alpha = None,
    threads: Threads = None,
    retrain: Retrain = False,
    fuse: FuseOption = Fuse.AUTO,
    fuse_max: FuseMax = None,
    register: Register = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = PrintedFormat.TABLE,
    launch: Launch | None = None,
) -> None:
    """Re-train a search's top trials on seeds the search never trained, until each is decided: no winner's curse."""
    check_settings(margin, alpha)
    env = _env(
        experiment,
        tracking_uri,
        threads=threads,
        retrain=retrain,
        create=False,
        launch=launch,
        fuse=fuse,
        fuse_max=fuse_max,
    )
    parent_id = _confirm(env, sweep, top, seeds, margin, alpha, fmt, max_seeds)
    if register:
        register_best(env.tracker, parent_id, register)
