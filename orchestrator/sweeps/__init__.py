"""What to train: every strategy is a plan run on one `Sweep` (sweep.py).

baseline (record a baseline, add a seed), ablate (one knob at a time), until_clear (seeds
added until every row has a verdict), confirm (a search's winners on fresh seeds), search/
(Optuna studies). The Sweep owns the parent run's life and never trains the same run twice
(reuse.py); how and where runs train is the execution layer's (`orchestrator/execution/`),
which only this package calls. attach.py writes tables and figures onto parent runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..execution.env import RunEnv
    from ..progress import Progress
    from ..tracking import Tracker


def command_env(
    tracker: Tracker,
    progress: Progress,
    *,
    threads: int | None = None,
    retrain: bool = False,
    launcher: str = "local",
    slurm: Mapping[str, Any] | None = None,
    slurm_profile: str | None = None,
    detach: bool = False,
    fuse: str = "auto",
    fuse_max: int | None = None,
) -> RunEnv:
    """What every run of one command shares, built once per command (the CLI's door to the
        execution layer, which only sweeps/ imports). `launcher`: where runs train, "local" or
        "slurm" (then `slurm`: the flags' SlurmOptions fields, over `slurm_profile`'s [slurm]
        table; `detach`: a search returns once its jobs are submitted); `fuse`, `fuse_max`: how
    same-shape runs train together (execution/fused.py)."""
    from ..execution.env import RunEnv

    where = None
    if launcher == "slurm":
        from ..execution.slurm_runs import slurm_launcher

        where = slurm_launcher(tracker, slurm or {}, slurm_profile, detach=detach)
    return RunEnv(
        tracker,
        progress,
        threads=threads,
        retrain=retrain,
        launcher=where,
        fuse=fuse,
        fuse_max=fuse_max,
    )
