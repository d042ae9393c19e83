"""How the specs of one command train on this machine: same-shape specs as fused groups
(execution/fused.py, where `--fuse` and the device say it pays), the rest one after another.

A plan hands its specs to the sweep, the sweep hands the ones that need training here,
with `open_run`: called right before a spec trains, it creates the spec's run (or says that
another process has it), so a run is RUNNING only while it trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .env import RunEnv
from .runner import train
from .spec import Outcome, RunSpec

OpenRun = Callable[[RunSpec], "RunSpec | Outcome"]


def run_specs(env: RunEnv, specs: Sequence[RunSpec], open_run: OpenRun) -> list[Outcome]:
    """Train `specs` in order; a spec another process claimed comes back as its Outcome.
    With a launcher (`--launcher slurm`), each spec trains as a task of one job array."""
    if env.launcher is not None:
        from .slurm_runs import run_specs_on_slurm

        return run_specs_on_slurm(env, specs, open_run)
    from .fused import groups, train_group

    outcomes: dict[int, Outcome] = {}
    for group in groups(env, specs):
        if len(group) == 1:
            opened = open_run(specs[group[0]])
            outcomes[group[0]] = opened if isinstance(opened, Outcome) else train(env, opened)
            continue
        for i, out in zip(
            group, train_group(env, [specs[i] for i in group], open_run), strict=True
        ):
            outcomes[i] = out
    return [outcomes[i] for i in range(len(specs))]
