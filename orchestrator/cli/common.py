"""The Typer app, the options the commands share, and `handled` (errors -> exit codes)."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from typer.core import TyperGroup

from ..choices import Fuse
from ..results.export import PrintedFormat
from .launch import Launch


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a choice not in the list, a missing value) as one
    `error:` line and exit 2, like every other bad input, instead of a boxed usage text."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(130)
        except typer.TyperException as e:  # Typer's usage errors (its vendored Click's)
            ctx = getattr(e, "ctx", None)
            if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help())
                sys.exit(0)
            text = e.format_message() if hasattr(e, "format_message") else str(e)
            text = " ".join(text.replace("Value error, ", "").split())
            where = f"{ctx.command_path}: " if ctx is not None and ctx.command is not self else ""
            typer.secho(f"error: {where}{text}", fg=typer.colors.RED, err=True)
            sys.exit(getattr(e, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="sweep",
    help="Which change makes your character-level GPT better? Baseline, one-knob ablations "
    "and Optuna searches, all recorded in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


def _version(value: bool) -> None:
    if value:
        from ..provenance import git_commit, version

        commit = git_commit()
        typer.echo(f"sweep {version('sweep')}" + (f" (git {commit[:12]})" if commit else ""))
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Which change makes your character-level GPT better? Baseline, one-knob ablations and
    Optuna searches, all recorded in MLflow."""


Experiment = Annotated[
    str, typer.Option("--experiment", "-e", help="MLflow experiment (one per study).")
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", help="MLflow store; default $MLFLOW_TRACKING_URI, else ./mlflow.db."
    ),
]
MAX_SEEDS = 1000  # seeds per configuration: far past what a verdict needs (a few to ~20)


def _check_threads(value: int | None) -> int | None:
    """More torch threads than the CPUs this process may use only fight over them."""
    if value is None:
        return value
    from model.train import usable_cpus  # torch: only when --threads is given

    if value > usable_cpus():
        raise typer.BadParameter(
            f"{value} is more than the {usable_cpus()} CPU(s) this process may use (0 = auto)"
        )
    return value


Seeds = Annotated[
    int | None,
    typer.Option(
        "--seeds",
        min=1,
        max=MAX_SEEDS,
        help=f"Seeds per configuration (verdicts need 2 or more; at most {MAX_SEEDS}).",
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=0,
        callback=_check_threads,
        help="torch threads per run, at most the CPUs this process may use (0 = auto: "
        "torch's default, capped by the CPUs this process may use and those the load leaves "
        "free when a run starts; a search: each worker's share). Recorded with every run; "
        "not part of a run's identity.",
    ),
]
Retrain = Annotated[
    bool,
    typer.Option(
        "--retrain",
        help="Train every run anew, even one whose config, seed, corpus and code a finished run "
        "of the experiment already trained (by default that run is reused and linked).",
    ),
]
FuseOption = Annotated[
    Fuse,
    typer.Option(
        "--fuse",
        case_sensitive=False,
        help="Train same-shape runs (seeds, values of dropout, lr, weight decay, warmup, "
        "schedule, clipping, betas) as one fused model: auto = where it pays on this device "
        "and shape (on the CPU: small models only), on = wherever memory allows, off = each "
        "run alone. Each member is still its own MLflow run (tag sweep.fused_group).",
    ),
]
FuseMax = Annotated[
    int | None,
    typer.Option(
        "--fuse-max",
        min=1,
        max=1024,
        help="At most this many runs in one fused group (default: what memory allows).",
    ),
]
Register = Annotated[
    str | None,
    typer.Option(
        "--register",
        metavar="NAME",
        help="Then log the best run's checkpoint as an MLflow Model (a pyfunc that generates "
        "text) and register it as NAME (a new version each time).",
    ),
]
BaselineId = Annotated[
    str | None, typer.Option("--baseline", help="Baseline run id (default: the latest).")
]
PrintFormat = Annotated[
    PrintedFormat, typer.Option("--format", help="How to print the table.", case_sensitive=False)
]
SweepId = Annotated[
    str | None, typer.Option("--sweep", help="Sweep parent run id (default: the latest sweep).")
]
KnobName = Annotated[
    str | None, typer.Option("--knob", "-k", help="The latest ablation of this knob.")
]
Margin = Annotated[
    float | None,
    typer.Option(
        "--margin",
        help="Practical margin in val-loss nats: a change whose interval lies inside ± this "
        "is 'equivalent' (default 0.02, about 2% in perplexity). Fixed at the sweep's first "
        "table; on `table`/`report` another value is a separate, labelled analysis.",
    ),
]
Alpha = Annotated[
    float | None,
    typer.Option(
        "--alpha",
        help="Family-wise level: every row's interval holds at every look with chance "
        "1 - alpha (default 0.05). Fixed like --margin.",
    ),
]


def check_knob(knob: str | None) -> None:
    """`--knob` names a knob `sweep ablate` takes (the closest one suggested), before the
    store is read, so a typo is not answered with `run sweep ablate --knob <typo>`."""
    from ..errors import UserError
    from ..sweeps.knobs import KNOBS, unknown_knob_message

    if knob is not None and knob not in KNOBS:
        raise UserError(f"--knob {knob}: {unknown_knob_message(knob)}")


def check_settings(margin: float | None, alpha: float | None) -> None:
    """Refuse a bad --margin/--alpha (one line, exit 2) before the store is read; what a
    sweep then records or reads is `results.settings.settings_for`'s business."""
    from ..results.settings import settings_for

    settings_for(None, alpha, margin)


def print_table(table, fmt) -> None:
    """The table, and under a human-readable one the sentence saying what its verdicts mean."""
    from ..results.export import render

    typer.echo(render(table, fmt))
    if fmt in ("table", "md"):
        typer.echo("\n" + table.legend)


def register_best(tracker, run_id: str, name: str) -> None:
    """Log the checkpoint of `run_id` (a parent run: its best child) as an MLflow Model
    registered as `name`, and say where it is."""
    from ..results.sample import checkpoint_run
    from ..tracking.models import log_checkpoint_model

    picked, _ = checkpoint_run(tracker, run_id)
    model = log_checkpoint_model(tracker, picked.run_id, register=name)
    typer.echo(
        f"registered {picked.name} ({picked.run_id}) as {model.registry_uri} "
        f"(logged model {model.model_uri}; `mlflow models predict -m {model.registry_uri} ...`)"
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def handled(fn=None, *, trains: bool = False):
    """One clear line and an exit code instead of a traceback. `trains`: the command records
    runs, so an interrupt says its current run was ended KILLED (a reading command has none).
    Interrupted: 128 + the signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    if fn is None:
        return functools.partial(handled, trains=trains)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from model.errors import ConfigError

        from ..errors import Interrupted, StoreError, UserError, exit_code, first_line

        try:
            with interrupts_kept():
                return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as e:
            raise fail(str(e), e.exit_code) from None
        except StoreError as e:
            raise fail(str(e), e.exit_code) from None
        except ConfigError as e:
            raise fail(f"{e.key}: {e.message}") from None
        except (KeyboardInterrupt, Interrupted) as e:
            what = str(e) if isinstance(e, Interrupted) or str(e) else "Ctrl-C"
            ended = "; the current run was ended as KILLED" if trains else ""
            typer.secho(f"interrupted ({what}){ended}", err=True)
            raise typer.Exit(exit_code(e)) from None
        except Exception as e:  # an unexpected error: still one line, traceback on demand
            if os.environ.get("SWEEP_DEBUG"):
                raise
            first = first_line(e)
            raise fail(
                f"{type(e).__name__}: {first} (set SWEEP_DEBUG=1 for the traceback)", 1
            ) from None

    return wrapper


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """An interrupt raised where Python cannot propagate it (Ctrl-C's handler ran inside a
    weakref callback or a finalizer that the garbage collector called) is printed as
    "Exception ignored" and dropped, and the command went on as if no Ctrl-C had come (seen
    once in five Ctrl-Cs on `sweep report`). Within the block such a drop is raised again
    50 ms later (SIGALRM), wherever the command then runs, until it propagates."""
    import signal
    import threading

    from ..errors import Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    dropped: list[BaseException] = []
    hook_before = sys.unraisablehook

    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Interrupted)):
            hook_before(unraisable)
        elif not dropped:
            dropped.append(unraisable.exc_value)
            signal.setitimer(signal.ITIMER_REAL, 0.05)

    def again(signum, frame) -> None:
        if dropped:
            raise dropped.pop()

    alarm_before = signal.signal(signal.SIGALRM, again)
    sys.unraisablehook = hook
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, alarm_before)
        sys.unraisablehook = hook_before


def _signals_as_interrupt() -> None:
    """SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) end the current run
    KILLED, like Ctrl-C, instead of leaving it RUNNING."""
    import signal

    from ..errors import Interrupted

    def raise_interrupted(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupted)


def _tracker(experiment: str, tracking_uri: str | None, create: bool = True, writes: bool = False):
    """The store; for a command that writes, runs left RUNNING by dead processes of this host
    (a closed terminal, a SIGKILL) are ended KILLED first, with the reason."""
    from .. import tracking as T

    tracker = T.Tracker(tracking_uri, experiment, create=create)
    if writes:
        # search trials are left to the search's own recovery, which also fails their
        # Optuna trial (and retries it) and says which worker died
        stale = [r for r in T.running(tracker) if r.tags.get(T.TAG_ROLE) != T.Role.SEARCH_TRIAL]
        for run in T.reap_stale(tracker, stale):
            typer.secho(
                f"note: {run.name} ({run.run_id}): {run.tags[T.TAG_REASON]}; ended KILLED", err=True
            )
    return tracker


def _env(
    experiment: str,
    tracking_uri: str | None,
    *,
    threads: int | None = None,
    retrain: bool = False,
    create: bool = True,
    launch: Launch | None = None,
    fuse: Fuse = Fuse.AUTO,
    fuse_max: int | None = None,
):
    """What a training command's runs share (built once per command): the store (with runs
    dead processes left RUNNING ended first), progress on stderr, the run-only settings,
    where runs train (`launch`); and SIGTERM/SIGHUP from here on end the current run KILLED,
    like Ctrl-C."""
    from ..progress import Progress
    from ..sweeps import command_env

    tracker = _tracker(experiment, tracking_uri, create=create, writes=True)
    _signals_as_interrupt()
    where = (launch or Launch()).env_options()
    return command_env(
        tracker,
        Progress(),
        threads=threads,
        retrain=retrain,
        fuse=str(fuse),
        fuse_max=fuse_max,
        **where,
    )
