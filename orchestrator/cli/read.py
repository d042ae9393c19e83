"""Commands that only read the store: list, table, best, sample, plot, report, ui."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from model.config import MAX_SEED

from ..results.export import Format
from ..tracking.schema import DEFAULT_EXPERIMENT
from .common import (
    Alpha,
    Experiment,
    KnobName,
    Margin,
    Register,
    SweepId,
    TrackingUri,
    _tracker,
    app,
    check_knob,
    check_settings,
    fail,
    handled,
    register_best,
)


@app.command("list")
@handled
def list_(
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Baselines and sweeps recorded in the experiment, newest first, with ids and states."""
    from ..results.listing import render, rows

    tracker = _tracker(experiment, tracking_uri, create=False)
    typer.echo(render(rows(tracker)))


@app.command()
@handled
def table(
    sweep: SweepId = None,
    knob: KnobName = None,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format", "-f", help="Default: from -o's suffix, else table.", case_sensitive=False
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (format from its suffix)."),
    ] = None,
    margin: Margin = None,
    alpha: Alpha = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """The comparison table of a sweep against its baseline."""
    from ..errors import UserError
    from ..results.export import format_for, render, write_atomic
    from ..results.table import sweep_table
    from ..tracking import find_sweep

    chosen = format_for(output, fmt) if output else (fmt or Format.TABLE)
    check_knob(knob)
    check_settings(margin, alpha)
    tracker = _tracker(experiment, tracking_uri, create=False)
    table = sweep_table(tracker, find_sweep(tracker, sweep, knob), alpha, margin)
    data = render(table, chosen)
    if output:
        write_atomic(output, data)
        typer.echo(f"wrote {output} ({chosen}, {len(table.rows)} rows)")
    elif isinstance(data, bytes):
        raise UserError(f"{chosen} is binary: give -o FILE")
    else:
        typer.echo(data)
        if chosen in (Format.TABLE, Format.MD):
            typer.echo("\n" + table.legend)


@app.command()
@handled
def best(
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Only this sweep's runs (default: the whole experiment)."),
    ] = None,
    register: Register = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """The run with the lowest best val loss, and where its checkpoint is (--register: as an
    MLflow Model in the registry)."""
    from ..results.best import best_run, standing

    tracker = _tracker(experiment, tracking_uri, create=False)
    run = best_run(tracker, sweep)
    m = run.metrics
    typer.echo(f"best run: {run.name} ({run.run_id})")
    typer.echo(
        f"  best_val_loss {m['best_val_loss']:.4f}  ppl {m.get('best_val_ppl', float('nan')):.2f}  at step {int(m.get('best_step', 0))}"
    )
    where = f"{run.artifact_uri.rstrip('/')}/checkpoints/best.pt"
    if where.startswith("file://"):  # a local store: the path, for `sweep sample --checkpoint`
        from urllib.parse import unquote, urlparse

        where = unquote(urlparse(where).path)
    typer.echo(f"  checkpoint: {where}")
    typer.echo(f"  sample it: sweep sample --run {run.run_id}")
    note = standing(tracker, run)
    if note:
        typer.echo(f"  {note}")
    if register:
        register_best(tracker, run.run_id, register)


@app.command()
@handled
def sample(
    run: Annotated[
        str | None,
        typer.Option("--run", help="Run id (a sweep or seeded baseline: its best child)."),
    ] = None,
    best: Annotated[
        bool, typer.Option("--best", help="Sample the experiment's best run (see `sweep best`).")
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint file (a run's checkpoints/best.pt)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="The course's settings: conservative (temperature 0.7, top-k 50), balanced "
            "(0.9, 100), spicier (1.1, top-k off); --temperature/--top-k override them.",
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="> 0; lower is more conservative (default 0.8).")
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", "--top_k", help="0 = off; clamped to the vocabulary size (default 50)."
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "--max_new_tokens")] = 400,
    prompt: Annotated[
        str | None,
        typer.Option(help="Text to continue (default: a newline, if the corpus has one)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.", min=0, max=MAX_SEED)] = 1337,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Generate text from a run's best checkpoint (or a checkpoint file)."""
    # long: most of its lines are the Typer options above; the body is a few calls
    from ..errors import UserError
    from ..results.best import best_run
    from ..results.sample import (
        check_sample,
        checkpoint_run,
        sample_file,
        sample_run,
        settings,
    )

    if sum((run is not None, best, checkpoint is not None)) != 1:
        raise UserError("give --run RUN_ID, --best or --checkpoint FILE (one of them)")
    temperature, top_k = settings(preset, temperature, top_k)
    check_sample(temperature, top_k, max_new_tokens, seed)  # before the store is read
    if checkpoint is not None:
        text, notices = sample_file(checkpoint, temperature, top_k, max_new_tokens, prompt, seed)
    else:
        tracker = _tracker(experiment, tracking_uri, create=False)
        if best:
            run = best_run(tracker).run_id
        picked, note = checkpoint_run(tracker, run)
        if best:
            loss = picked.metrics.get("best_val_loss", float("nan"))
            note = (
                f"sampling the best run: {picked.name} ({picked.run_id}), best_val_loss {loss:.4f}"
            )
        if note:
            typer.secho(f"note: {note}", err=True)
        text, notices = sample_run(
            tracker, picked.run_id, temperature, top_k, max_new_tokens, prompt, seed
        )
    for n in notices:
        typer.secho(f"warning: {n}", fg=typer.colors.YELLOW, err=True)
    typer.echo(text)


@app.command()
@handled
def plot(
    sweep: SweepId = None,
    knob: KnobName = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for the PNGs (default: <store>/sweep-plots/<sweep>/)."
        ),
    ] = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Figures of a sweep (learning curves, deltas, Optuna), also attached to its parent run."""
    from ..results.plots import plot_sweep
    from ..sweeps.attach import attach_figures
    from ..tracking import find_sweep

    check_knob(knob)
    tracker = _tracker(experiment, tracking_uri, create=False)
    result = plot_sweep(tracker, find_sweep(tracker, sweep, knob), output)
    attach_figures(tracker, result.parent_id, result.paths)
    for note in result.notes:
        typer.secho(f"note: {note}", err=True)
    for path in result.paths:
        typer.echo(str(path))
    if not result.paths:
        raise fail(f"no figure for sweep {result.parent_id}: nothing recorded to draw yet")
    typer.echo(f"attached to run {result.parent_id} under plots/ (see `sweep ui`)", err=True)


@app.command()
@handled
def report(
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Only this sweep (default: every sweep of the experiment)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="FILE.html (one mailable file) or FILE.md (PNGs beside it)."
        ),
    ] = None,
    margin: Margin = None,
    alpha: Alpha = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """One document: baseline config and dataset, tables with verdicts, figures, best config, samples."""
    from ..results.report import default_path, report_format, sweeps_for, write_report

    if output is not None:
        report_format(output)
    check_settings(margin, alpha)
    tracker = _tracker(experiment, tracking_uri, create=False)
    sweeps = sweeps_for(tracker, sweep)
    path = output or default_path(tracker, sweeps, sweep is not None)
    result = write_report(tracker, sweeps, path, alpha=alpha, margin=margin)
    for note in result.notes:
        typer.secho(f"note: {note}", err=True)
    typer.echo(f"wrote {result.path} ({len(result.sweeps)} sweep(s))")


@app.command()
@handled
def ui(
    host: Annotated[
        str, typer.Option(help="Address to bind; 127.0.0.1 keeps it private.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 5000,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Start the MLflow UI on the same store (Ctrl-C stops it)."""
    from ..ui import serve_ui

    code = serve_ui(
        tracking_uri,
        host,
        port,
        echo=typer.echo,
        warn=lambda t: typer.echo(t, err=True),
        experiment=experiment,
    )
    raise typer.Exit(code)
