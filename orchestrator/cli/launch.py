"""Where a training command's runs train: `--launcher`, the Slurm options (flags, or a
profile's [slurm] table through --slurm-profile) and a search's `--detach`, as Annotated
types, and `with_launcher`, which adds them all to a command (search, ablate, confirm) that
then gets them as one `launch: Launch` argument for `_env`."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from ..choices import Launcher

LauncherOption = Annotated[
    Launcher,
    typer.Option(
        "--launcher",
        case_sensitive=False,
        help="Where runs train: local (this machine) or slurm (one Slurm job array; needs an "
        "MLflow tracking server and, for a search, --storage postgresql://...).",
    ),
]
SlurmProfile = Annotated[
    str | None,
    typer.Option(
        "--slurm-profile",
        help="Slurm options from this profile's \\[slurm] table (a name in experiments/ or a "
        ".toml path); the --slurm-* flags win.",
    ),
]
SlurmPartition = Annotated[
    str | None, typer.Option("--slurm-partition", help="Partition (default: the cluster's).")
]
SlurmTime = Annotated[
    str | None,
    typer.Option("--slurm-time", help="Time limit per job: minutes or [D-]HH:MM:SS (default 60)."),
]
SlurmCpus = Annotated[
    int | None,
    typer.Option("--slurm-cpus", help="CPUs per job (default 1): its torch threads."),
]
SlurmGpus = Annotated[int | None, typer.Option("--slurm-gpus", help="GPUs per job (default 0).")]
SlurmMem = Annotated[
    str | None, typer.Option("--slurm-mem", help="Memory per job: MB, or e.g. 8G.")
]
SlurmAccount = Annotated[str | None, typer.Option("--slurm-account", help="Account to charge.")]
SlurmSbatch = Annotated[
    list[str] | None,
    typer.Option(
        "--slurm-sbatch", help="Another sbatch option: --slurm-sbatch=--qos=high (repeatable)."
    ),
]
SlurmSignalDelay = Annotated[
    int | None,
    typer.Option(
        "--slurm-signal-delay",
        help="Seconds before its time limit that a job is told to requeue (default 90).",
    ),
]
SlurmMaxTimeouts = Annotated[
    int | None,
    typer.Option(
        "--slurm-max-timeouts",
        help="Requeues after a time limit, per job (default 3; preemptions do not count).",
    ),
]
Detach = Annotated[
    bool,
    typer.Option(
        "--detach",
        help="With --launcher slurm: return once the worker jobs are submitted (`sweep list`, "
        "`sweep table` show the study; `scancel` stops the jobs).",
    ),
]
# each Slurm flag's parameter -> (its type, the SlurmOptions field it sets)
SLURM_FLAGS: dict[str, tuple[Any, str]] = {
    "slurm_partition": (SlurmPartition, "partition"),
    "slurm_time": (SlurmTime, "time"),
    "slurm_cpus": (SlurmCpus, "cpus"),
    "slurm_gpus": (SlurmGpus, "gpus"),
    "slurm_mem": (SlurmMem, "mem"),
    "slurm_account": (SlurmAccount, "account"),
    "slurm_sbatch": (SlurmSbatch, "sbatch"),
    "slurm_signal_delay": (SlurmSignalDelay, "signal_delay_s"),
    "slurm_max_timeouts": (SlurmMaxTimeouts, "max_timeouts"),
}


@dataclass(frozen=True)
class Launch:
    """Where a command's runs train, as its flags said (`command_env` makes the launcher)."""

    launcher: Launcher = Launcher.LOCAL
    slurm: dict[str, Any] = field(default_factory=dict)  # the SlurmOptions fields given
    profile: str | None = None
    detach: bool = False

    @classmethod
    def of(cls, given: dict[str, Any]) -> Launch:
        """From the flags' values; a Slurm flag without --launcher slurm is refused."""
        from ..errors import UserError

        launch = cls(
            Launcher(given["launcher"]),
            {f: given[p] for p, (_, f) in SLURM_FLAGS.items() if given[p] not in (None, [])},
            given["slurm_profile"],
            given.get("detach", False),
        )
        used = [p for p, v in given.items() if p != "launcher" and v not in (None, [], False)]
        if launch.launcher is Launcher.LOCAL and used:
            raise UserError(f"--{used[0].replace('_', '-')} needs --launcher slurm")
        if "sbatch" in launch.slurm:
            launch.slurm["sbatch"] = tuple(launch.slurm["sbatch"])
        return launch

    def env_options(self) -> dict[str, Any]:
        """command_env's keyword arguments."""
        return {
            "launcher": self.launcher.value,
            "slurm": self.slurm,
            "slurm_profile": self.profile,
            "detach": self.detach,
        }


def with_launcher(*, detach: bool = False):
    """Give a training command --launcher, --slurm-profile and the --slurm-* options (and
    --detach, a search's) without listing them in its signature: it gets them as one
    `launch: Launch` argument. (Typer reads the options from the signature made here.)"""
    extra: dict[str, tuple[Any, Any]] = {
        "launcher": (LauncherOption, Launcher.LOCAL),
        "slurm_profile": (SlurmProfile, None),
        **{p: (t, None) for p, (t, _) in SLURM_FLAGS.items()},
    }
    if detach:
        extra["detach"] = (Detach, False)

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        params = [p for p in sig.parameters.values() if p.name != "launch"]
        kind = inspect.Parameter.KEYWORD_ONLY
        params += [
            inspect.Parameter(n, kind, default=d, annotation=t) for n, (t, d) in extra.items()
        ]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            given = {n: kwargs.pop(n, d) for n, (_, d) in extra.items()}
            return fn(*args, launch=Launch.of(given), **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
