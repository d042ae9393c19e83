"""`sweep`: the command line. Thin: parses, delegates, owns exit codes.

Exit codes: 0 done; 1 a run failed or an unexpected error; 2 bad input or a missing
precondition (one line, no traceback); 130 interrupted (runs end KILLED, never RUNNING).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="sweep",
    help="Which change makes your character-level GPT better? Baseline, one-knob ablations "
    "and Optuna searches, all recorded in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Experiment = Annotated[
    str, typer.Option("--experiment", "-e", help="MLflow experiment (one per study).")
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", help="MLflow store; default $MLFLOW_TRACKING_URI, else ./mlflow.db."
    ),
]
Seeds = Annotated[
    int | None, typer.Option("--seeds", help="Seeds per configuration (verdicts need 2 or more).")
]
BaselineId = Annotated[
    str | None, typer.Option("--baseline", help="Baseline run id (default: the latest).")
]
PrintFormat = Annotated[
    str, typer.Option("--format", help="How to print the table: table, md, csv, json or html.")
]
DEFAULT_EXPERIMENT = "char-gpt"


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def handled(fn):
    """One clear line and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from model.errors import ConfigError

        from .errors import UserError
        from .runner import Interrupted

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as e:
            raise fail(str(e), e.exit_code) from None
        except ConfigError as e:
            raise fail(f"{e.key}: {e.message}") from None
        except (KeyboardInterrupt, Interrupted):
            typer.secho("interrupted: the current run was ended as KILLED", err=True)
            raise typer.Exit(130) from None
        except Exception as e:  # an unexpected error: still one line, traceback on demand
            if os.environ.get("SWEEP_DEBUG"):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
            raise fail(
                f"{type(e).__name__}: {first} (set SWEEP_DEBUG=1 for the traceback)", 1
            ) from None

    return wrapper


def _sigterm_as_interrupt() -> None:
    import signal

    from .runner import Interrupted

    def raise_interrupted(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, raise_interrupted)


def _tracker(experiment: str, tracking_uri: str | None, create: bool = True):
    from .tracking import Tracker

    return Tracker(tracking_uri, experiment, create=create)


def _progress():
    from .progress import Progress

    return Progress()


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
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train and record the baseline every later sweep compares against."""
    from .baseline import record_baseline
    from .config import build, parse_overrides

    cfg = build(profile, parse_overrides(set_ or []), data)
    tracker = _tracker(experiment, tracking_uri)
    _sigterm_as_interrupt()
    result = record_baseline(tracker, cfg, seeds, _progress())
    typer.echo(f"baseline run {result.run_id} in experiment '{experiment}' ({tracker.uri})")
    if not result.ok:
        raise fail(
            "the baseline did not finish: "
            + "; ".join(o.reason or o.state for o in result.outcomes if o.state != "complete"),
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
    baseline_id: BaselineId = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = "table",
) -> None:
    """Change one knob at a time against the recorded baseline, then print the comparison."""
    from .ablate import run_ablation, split_values
    from .compare import render, sweep_table

    tracker = _tracker(experiment, tracking_uri)
    _sigterm_as_interrupt()
    result = run_ablation(tracker, knob, split_values(values), seeds, baseline_id, _progress())
    df = sweep_table(tracker, tracker.get_run(result.parent_id))
    typer.echo(render(df, fmt))
    typer.echo(f"\nsweep run {result.parent_id}; browse it with `sweep ui` (store {tracker.uri})")
    failed = [o for o in result.trained if o.state == "failed"]
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
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, random, cmaes or grid.")] = "tpe",
    pruner: Annotated[
        str, typer.Option("--pruner", help="hyperband, median or none.")
    ] = "hyperband",
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
    baseline_id: BaselineId = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
    fmt: PrintFormat = "table",
) -> None:
    """Optuna search around the recorded baseline, every trial a nested MLflow run."""
    from .compare import render
    from .search import report_lines, run_search

    tracker = _tracker(experiment, tracking_uri)
    _sigterm_as_interrupt()
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
    )
    typer.echo(render(result.table, fmt))
    typer.echo("\n" + "\n".join(report_lines(result)))


@app.command()
@handled
def table(
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="Sweep parent run id (default: the latest sweep).")
    ] = None,
    knob: Annotated[
        str | None, typer.Option("--knob", "-k", help="The latest ablation of this knob.")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="table, md, csv, json, html or parquet.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (format from its suffix)."),
    ] = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """The comparison table of a sweep against its baseline."""
    from .compare import FORMATS, find_sweep, format_for, render, sweep_table, write_atomic
    from .errors import UserError

    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    tracker = _tracker(experiment, tracking_uri, create=False)
    df = sweep_table(tracker, find_sweep(tracker, sweep, knob))
    chosen = format_for(output, fmt) if output else (fmt or "table")
    data = render(df, chosen)
    if output:
        write_atomic(output, data)
        typer.echo(f"wrote {output} ({chosen}, {len(df)} rows)")
    elif isinstance(data, bytes):
        raise UserError(f"{chosen} is binary: give -o FILE")
    else:
        typer.echo(data)


@app.command()
@handled
def best(
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Only this sweep's runs (default: the whole experiment)."),
    ] = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """The run with the lowest best val loss, and where its checkpoint is."""
    from .results import best_run

    tracker = _tracker(experiment, tracking_uri, create=False)
    run = best_run(tracker, sweep)
    m = run.metrics
    typer.echo(f"best run: {run.name} ({run.run_id})")
    typer.echo(
        f"  best_val_loss {m['best_val_loss']:.4f}  ppl {m.get('best_val_ppl', float('nan')):.2f}  at step {int(m.get('best_step', 0))}"
    )
    typer.echo(f"  checkpoint: {run.artifact_uri.rstrip('/')}/checkpoints/best.pt")
    typer.echo(f"  sample it: sweep sample --run {run.run_id}")


@app.command()
@handled
def sample(
    run: Annotated[str, typer.Option("--run", help="Run id whose best checkpoint to sample from.")],
    temperature: Annotated[float, typer.Option(help="> 0; lower is more conservative.")] = 0.8,
    top_k: Annotated[
        int, typer.Option("--top-k", help="0 = off; clamped to the vocabulary size.")
    ] = 50,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 400,
    prompt: Annotated[str, typer.Option(help="Text to continue.")] = "\n",
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1337,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """Generate text from a run's best checkpoint."""
    from .results import sample_run

    tracker = _tracker(experiment, tracking_uri, create=False)
    text, notices = sample_run(tracker, run, temperature, top_k, max_new_tokens, prompt, seed)
    for n in notices:
        typer.secho(f"warning: {n}", fg=typer.colors.YELLOW, err=True)
    typer.echo(text)


@app.command()
@handled
def plot(
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="Sweep parent run id (default: the latest sweep).")
    ] = None,
    knob: Annotated[
        str | None, typer.Option("--knob", "-k", help="The latest ablation of this knob.")
    ] = None,
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
    from .compare import find_sweep
    from .plots import plot_sweep

    tracker = _tracker(experiment, tracking_uri, create=False)
    result = plot_sweep(tracker, find_sweep(tracker, sweep, knob), output)
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
    experiment: Experiment = DEFAULT_EXPERIMENT,
    tracking_uri: TrackingUri = None,
) -> None:
    """One document: baseline config and dataset, tables with verdicts, figures, best config, samples."""
    from .report import default_path, report_format, sweeps_for, write_report

    if output is not None:
        report_format(output)
    tracker = _tracker(experiment, tracking_uri, create=False)
    sweeps = sweeps_for(tracker, sweep)
    result = write_report(
        tracker, sweeps, output or default_path(tracker, sweeps, sweep is not None)
    )
    for note in result.notes:
        typer.secho(f"note: {note}", err=True)
    typer.echo(f"wrote {result.path} ({len(result.sweeps)} sweep(s))")


@app.command()
@handled
def ui(
    host: Annotated[
        str, typer.Option(help="Address to bind; 127.0.0.1 keeps it private.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
    tracking_uri: TrackingUri = None,
) -> None:
    """Start the MLflow UI on the same store (Ctrl-C stops it)."""
    from .results import serve_ui

    code = serve_ui(tracking_uri, host, port, echo=typer.echo)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
