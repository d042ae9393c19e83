"""How much of the cluster each array task asks for: SlurmOptions, from flags and from a
profile's [slurm] table, validated with messages that name the flag (or the table key),
and turned into submitit's SlurmExecutor parameters."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, fields, replace
from typing import Any

from ..errors import UserError

# The flag each option is set with on the command line (the name a message shows).
FLAGS = {
    "partition": "--slurm-partition",
    "time": "--slurm-time",
    "cpus": "--slurm-cpus",
    "gpus": "--slurm-gpus",
    "mem": "--slurm-mem",
    "account": "--slurm-account",
    "sbatch": "--slurm-sbatch",
    "signal_delay_s": "--slurm-signal-delay",
    "max_timeouts": "--slurm-max-timeouts",
}
# sbatch options that sweep sets itself: an extra line may not change them.
MANAGED = {
    "array": "the job array is sweep's",
    "output": "logs go to the jobs folder",
    "error": "logs go to the jobs folder",
    "open-mode": "logs go to the jobs folder",
    "signal": "use --slurm-signal-delay",
    "requeue": "tasks are always requeueable",
    "no-requeue": "tasks are always requeueable",
    "job-name": "sweep names the job",
    "wrap": "sweep writes the batch script",
    "partition": "use --slurm-partition",
    "time": "use --slurm-time",
    "cpus-per-task": "use --slurm-cpus",
    "gpus-per-node": "use --slurm-gpus",
    "mem": "use --slurm-mem",
    "account": "use --slurm-account",
}
NAME = re.compile(r"[A-Za-z0-9_.,+-]+")
MEM = re.compile(r"\d+[KMGTkmgt]?")
SBATCH_LINE = re.compile(r"(?:#SBATCH\s+)?--([a-z][a-z0-9-]*)(?:[= ](.+))?")
TIME = re.compile(r"(?:(\d+)-)?(\d+(?::\d+){0,2})")
DEFAULT_SIGNAL_DELAY_S = 90  # submitit's own default


def _time_seconds(value: object) -> int | None:
    """Slurm's --time: minutes (int or "90"), "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 60
    m = TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        return None
    parts = [int(p) for p in m.group(2).split(":")]
    if m.group(1) is not None:
        hours, minutes, seconds = (*parts, 0, 0)[:3]
        return ((int(m.group(1)) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


def _count(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def sbatch_option(line: str) -> tuple[str, str | bool] | None:
    """`--qos=high` (or `#SBATCH --qos high`) as ("qos", "high"); `--exclusive` as
    ("exclusive", True); None when the line is not a long sbatch option."""
    m = SBATCH_LINE.fullmatch(line.strip()) if isinstance(line, str) else None
    if m is None:
        return None
    return m.group(1), (m.group(2).strip() if m.group(2) else True)


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks Slurm for. `time` is Slurm's --time (minutes, or
    [D-]H:M:S); `mem` Slurm's --mem (MB, or with a K/M/G/T suffix); `sbatch` extra long
    options, one per line (`--qos=high`, `--constraint=a100`). `signal_delay_s`: how long
    before the time limit submitit's checkpoint-and-requeue signal comes (default 90 s, half
    the limit when that is shorter). `origin` names where the values came from for the
    messages: None for flags, else e.g. "profile cpu-safe" (a [slurm] table)."""

    partition: str | None = None
    time: int | str = 60
    cpus: int = 1
    gpus: int = 0
    mem: str | None = None
    account: str | None = None
    sbatch: tuple[str, ...] = ()
    signal_delay_s: int | None = None
    max_timeouts: int = 3
    origin: InitVar[str | None] = None

    def __post_init__(self, origin: str | None) -> None:
        for name, problem in self._problems():
            where = FLAGS[name] if origin is None else f"[slurm] {name} in {origin}"
            raise UserError(f"{where} = {getattr(self, name)!r}: {problem}")

    def _problems(self) -> Iterable[tuple[str, str]]:
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and NAME.fullmatch(value)):
                yield name, "expected a Slurm name (letters, digits, _ . , + -)"
        seconds = _time_seconds(self.time)
        if seconds is None or seconds < 1:
            yield "time", "expected minutes or Slurm's [D-]H:M:S, e.g. 90 or 1:30:00"
        if not _count(self.cpus, 1):
            yield "cpus", "expected a whole number of CPUs per task, at least 1"
        if not _count(self.gpus, 0):
            yield "gpus", "expected a whole number of GPUs per task, 0 or more"
        if self.mem is not None and not (isinstance(self.mem, str) and MEM.fullmatch(self.mem)):
            yield "mem", "expected Slurm's --mem: MB, or a number with K, M, G or T (e.g. 8G)"
        if not isinstance(self.sbatch, tuple) or not all(isinstance(x, str) for x in self.sbatch):
            yield "sbatch", "expected a list of sbatch options, one per line"
        else:
            for line in self.sbatch:
                option = sbatch_option(line)
                if option is None:
                    yield "sbatch", f"{line!r} is not a long sbatch option like --qos=high"
                elif option[0] in MANAGED:
                    yield "sbatch", f"--{option[0]} is set by sweep ({MANAGED[option[0]]})"
        if self.signal_delay_s is not None and not (
            _count(self.signal_delay_s, 1) and seconds and self.signal_delay_s < seconds
        ):
            yield "signal_delay_s", "expected whole seconds, at least 1 and below the time limit"
        if not _count(self.max_timeouts, 0):
            yield "max_timeouts", "expected a whole number, 0 or more"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], origin: str) -> SlurmOptions:
        """From a profile's [slurm] table (keys: the field names; `sbatch` a list)."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise UserError(
                f"[slurm] in {origin}: unknown key {unknown[0]!r} (known: {', '.join(known)})"
            )
        values = dict(table)
        if isinstance(values.get("sbatch"), list):
            values["sbatch"] = tuple(values["sbatch"])
        return cls(**values, origin=origin)

    def merged(self, **flags: Any) -> SlurmOptions:
        """These options with the flags given (not None) over them; `sbatch` lines add to
        the table's (a later line for the same option wins in sbatch)."""
        given = {k: v for k, v in flags.items() if v is not None}
        extra = tuple(given.pop("sbatch", ()))
        return replace(self, **given, sbatch=self.sbatch + extra)

    @property
    def time_minutes(self) -> int:
        return math.ceil(_time_seconds(self.time) / 60)

    def executor_parameters(self, name: str) -> dict[str, Any]:
        """submitit.SlurmExecutor.update_parameters(**this)."""
        seconds = self.time_minutes * 60
        delay = self.signal_delay_s or min(DEFAULT_SIGNAL_DELAY_S, seconds // 2)
        extra: dict[str, Any] = {"requeue": True}
        extra.update(opt for opt in map(sbatch_option, self.sbatch) if opt is not None)
        params: dict[str, Any] = {
            "job_name": name,
            "time": self.time_minutes,
            "cpus_per_task": self.cpus,
            "signal_delay_s": delay,
            "additional_parameters": extra,
        }
        optional = {"partition": self.partition, "mem": self.mem, "account": self.account}
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.mem is not None:
            params["mem"] = self.mem.upper()
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        return params
